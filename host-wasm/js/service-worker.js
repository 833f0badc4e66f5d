// Service Worker helper: one local Durable Streams server per origin.
//
// In a module service worker, `serveLocalStreams()` answers every fetch for
// a URL prefix of the worker's own origin with a DurableStreams server that
// lives in the worker, so plain fetch, EventSource and @durable-streams/client
// in every tab of the origin share the same streams. In a page,
// `registerLocalStreams()` registers such a worker and resolves once the
// page is controlled by it.

import { DurableStreams } from "./durable-streams.js"

/**
 * Routes this service worker's fetch events for `prefix` (a path under
 * /v1/stream/, default "/v1/stream/", same origin only) to a local server;
 * other requests go to the network as usual. Call it once, at the top level
 * of a module service worker. Unless `takeControl` is false, the worker
 * activates at once and claims open pages.
 */
export function serveLocalStreams(options = {}) {
  const { prefix = "/v1/stream/", takeControl = true, ...open } = options
  if (!prefix.startsWith("/v1/stream/")) throw new TypeError(`prefix must start with /v1/stream/, got ${prefix}`)
  const scope = globalThis
  let server
  // Opened once per worker life: the browser may stop an idle worker, and a
  // restarted one starts empty, so open lazily too, not only at install.
  const local = () => {
    server ??= DurableStreams.open(open).catch((error) => {
      server = undefined
      throw error
    })
    return server
  }
  scope.addEventListener("install", (event) => {
    event.waitUntil(local().then(() => (takeControl ? scope.skipWaiting() : undefined)))
  })
  scope.addEventListener("activate", (event) => {
    if (takeControl) event.waitUntil(scope.clients.claim())
  })
  scope.addEventListener("fetch", (event) => {
    const url = new URL(event.request.url)
    if (url.origin !== scope.location.origin || !url.pathname.startsWith(prefix)) return
    event.respondWith(local().then((server) => server.fetch(event.request)))
  })
  return { server: local }
}

/**
 * Registers `scriptURL` as a module service worker (which calls
 * serveLocalStreams) and resolves with the registration once this page is
 * controlled by an active worker, so its fetches reach the local server.
 */
export async function registerLocalStreams(scriptURL, options = {}) {
  const container = navigator.serviceWorker
  if (!container) throw new Error("service workers are not available here (they need a secure context: https or localhost)")
  const registration = await container.register(scriptURL, { ...options, type: "module" })
  await container.ready
  if (!container.controller) {
    await new Promise((resolve) => container.addEventListener("controllerchange", resolve, { once: true }))
  }
  return registration
}
