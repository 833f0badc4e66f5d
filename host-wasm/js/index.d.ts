/**
 * durable-streams-local: a Durable Streams server that runs inside the page,
 * a Worker, a Service Worker or Node, with no network and no server. The
 * protocol engine is Rust compiled to WebAssembly; streams live in memory.
 */

/** Options of {@link DurableStreams.open}. */
export interface OpenOptions {
  /** How long a `live=long-poll` read waits for data before answering 204. Default 30000. */
  longPollTimeoutMs?: number
  /** Most bytes one catch-up read returns. Default 1048576. */
  maxChunkBytes?: number
  /** Largest accepted request body; larger ones get 413. Default 67108864. */
  maxBodyBytes?: number
  /**
   * The clock, in milliseconds since the Unix epoch (default `Date.now`).
   * For tests and demos: after moving it forward, call {@link DurableStreams.tick}.
   */
  now?: () => number
  /**
   * Allow webhook subscriptions to `http://localhost` and `http://127.0.0.x`
   * (the development exception of PROTOCOL §12.8). Default false.
   */
  allowLocalWebhooks?: boolean
  /**
   * How webhooks (PROTOCOL §7.1) are sent: a fetch-like function, default
   * `globalThis.fetch`. In browsers the receiver must allow CORS.
   */
  webhookFetch?: FetchFunction
  /**
   * Where to load the WebAssembly module from, when not from the default
   * place next to the package's JavaScript (for example after a bundler moved
   * it). Ignored once the module is loaded in this realm.
   */
  wasm?: string | URL | Request | Response | ArrayBuffer | ArrayBufferView | WebAssembly.Module
}

/** The signature of `globalThis.fetch`, which {@link DurableStreams.fetch} has. */
export type FetchFunction = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

/** A local Durable Streams server. */
export declare class DurableStreams {
  /** Use {@link DurableStreams.open}. */
  private constructor()

  /** Loads the WebAssembly module (once) and opens an empty, in-memory server. */
  static open(options?: OpenOptions): Promise<DurableStreams>

  /**
   * Serves a request like `globalThis.fetch` would, for every path under
   * `/v1/stream/` of any origin (other paths get 404). Long-polls resolve when
   * data arrives or the timeout passes; SSE responses are streaming
   * `text/event-stream` bodies that end at EOF or when the reader cancels or
   * the request's signal aborts. Bound to its instance: pass it as the `fetch`
   * option of `@durable-streams/client`.
   */
  readonly fetch: FetchFunction

  /** Number of parked long-polls and live SSE bodies. */
  readonly pending: number

  /**
   * Re-checks every deadline (long-poll timeouts, SSE keep-alives, stream
   * expiry, subscription leases, webhook retries) against the clock. Timers do this by themselves; call it after
   * moving an injected `now` clock forward.
   */
  tick(): void

  /**
   * Exports every stream whose path (relative to `/v1/stream/`) starts with
   * `prefix` as one archive, in the format `durable-streams-server export`
   * writes: data, offsets, content types, closure, forks, TTLs, producer state.
   */
  exportArchive(options?: { prefix?: string }): Uint8Array
  /**
   * Imports an archive. `onConflict`: `"skip"` (default), `"replace"`, or
   * `"fail"` (nothing is imported when any path is taken).
   */
  importArchive(
    archive: Uint8Array | ArrayBuffer,
    options?: { onConflict?: "skip" | "replace" | "fail" },
  ): { imported: string[]; replaced: string[]; skipped: [string, string][] }
  /**
   * Stops the server: parked long-polls are answered, SSE bodies end, timers
   * are cleared and memory is released. Later calls to `fetch` reject.
   */
  close(): void
}
