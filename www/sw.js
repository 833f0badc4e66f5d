// The demo's service worker (a module worker at the root of the site):
//  - /v1/stream/local/… is answered by one local Durable Streams server, the
//    Rust engine compiled to WebAssembly (durable-streams-local), shared by
//    every tab of this origin;
//  - the site's own files are cached at install and served from the cache,
//    so the demo works offline once it has loaded.
// scripts/build-www.sh fills in BUILD and FILES; a new build is a new
// worker (and a new cache).

import { serveLocalStreams } from "./pkg/service-worker.js"

const BUILD = "dev"
const FILES = []
const CACHE = `ds-demo-${BUILD}`
const PREFIX = "/v1/stream/local/"

const { server } = serveLocalStreams({ prefix: PREFIX, longPollTimeoutMs: 20_000 })

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(FILES.map((file) => new Request(new URL(file, self.location.href), { cache: "reload" })))),
  )
})

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k.startsWith("ds-demo-") && k !== CACHE).map((k) => caches.delete(k)))),
  )
})

self.addEventListener("fetch", (event) => {
  const request = event.request
  const url = new URL(request.url)
  // Streams are not files: the local server answers PREFIX (see above), and
  // anything else under /v1/ goes to the network.
  if (request.method !== "GET" || url.origin !== self.location.origin || url.pathname.startsWith("/v1/")) return
  event.respondWith(fromCache(request))
})

/** The cached copy of a site file (any navigation gets the page), else the network. */
async function fromCache(request) {
  const cache = await caches.open(CACHE)
  const hit = (await cache.match(request, { ignoreSearch: true })) ?? (request.mode === "navigate" ? await cache.match(new URL("./", self.location.href)) : undefined)
  return hit ?? fetch(request)
}

self.addEventListener("message", (event) => {
  const type = event.data?.type
  if (type === "claim") {
    // A page loaded with a hard reload is not controlled until claimed.
    event.waitUntil(self.clients.claim())
  } else if (type === "ping") {
    // Pages ping every few seconds: each message keeps the worker (and the
    // streams in its memory) alive a while longer.
    event.waitUntil(server().then((local) => event.source?.postMessage({ type: "pong", pending: local.pending, build: BUILD })))
  }
})
