/**
 * Service Worker helper of durable-streams-local: one local server per
 * origin, shared by plain fetch, EventSource and @durable-streams/client in
 * every tab of the origin.
 */
import type { DurableStreams, OpenOptions } from "./index.js"

/** Options of {@link serveLocalStreams}. */
export interface ServeOptions extends OpenOptions {
  /**
   * URL path prefix routed to the local server, on the worker's own origin.
   * Must start with `/v1/stream/`. Default `/v1/stream/`.
   */
  prefix?: string
  /**
   * Activate at once (`skipWaiting`) and take control of open pages
   * (`clients.claim`). Default true.
   */
  takeControl?: boolean
}

/**
 * Call once at the top level of a module service worker: answers the
 * worker's fetch events for `prefix` with a local server living in the
 * worker. The browser may stop an idle worker; a restarted worker starts
 * with no streams.
 */
export declare function serveLocalStreams(options?: ServeOptions): {
  /** The worker's server (opened on first use). */
  server(): Promise<DurableStreams>
}

/**
 * In a page: registers `scriptURL` as a module service worker and resolves
 * once the page is controlled by it, so its requests reach the local server.
 */
export declare function registerLocalStreams(
  scriptURL: string | URL,
  options?: Omit<RegistrationOptions, "type">,
): Promise<ServiceWorkerRegistration>
