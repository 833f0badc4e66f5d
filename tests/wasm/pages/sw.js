// The test service worker: every /v1/stream/ request of this origin is
// served by one local server living in this worker. Pages may ask it, by
// message, how many readers are parked (to check that cancelled ones are
// released).
import { serveLocalStreams } from "/pkg/service-worker.js"

const { server } = serveLocalStreams({ prefix: "/v1/stream/", longPollTimeoutMs: 5000 })

self.addEventListener("message", (event) => {
  event.waitUntil(server().then((local) => event.source.postMessage({ pending: local.pending })))
})
