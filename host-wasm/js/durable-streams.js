// The public API of the package: DurableStreams, a fetch-compatible local
// Durable Streams server running the Rust engine compiled to WebAssembly.
//
// Every protocol decision is made by the engine (`Core`, from ds_wasm.js).
// This module only moves bytes between fetch's Request/Response and Core,
// and runs what the engine cannot: timers, parked promises, streaming
// bodies and sending webhooks. After every Core call it asks which stream
// paths advanced, wakes the readers parked on them, and sends the webhooks
// the engine queued.

import init, { Core } from "./ds_wasm.js"

const OPEN = Symbol("DurableStreams.open")
// setTimeout fires at once for delays above 2^31 - 1 ms; wait in steps.
const MAX_DELAY = 2 ** 31 - 1
// Statuses whose responses have no body (the Response constructor says so).
const NULL_BODY = new Set([101, 103, 204, 205, 304])
// One webhook attempt may take this long; only this much of the answer is read.
const WEBHOOK_TIMEOUT_MS = 10_000
const WEBHOOK_MAX_RESPONSE = 64 * 1024

/** A local Durable Streams server: `fetch` in, `Response` out. */
export class DurableStreams {
  #core
  #clock
  /** Readers parked on a stream path: Map<path, Set<waiter>>. */
  #waiters = new Map()
  #deadlineAt = undefined
  #deadlineTimer = undefined
  #webhookFetch

  /**
   * Serves `input`/`init` (what `globalThis.fetch` accepts) for any origin.
   * Bound to its instance, so it can be handed out as a plain function
   * (for example as the `fetch` option of `@durable-streams/client`).
   */
  fetch = (input, init) => this.#fetch(input, init)

  /**
   * Loads the WebAssembly module (once per realm) and opens an empty,
   * in-memory server.
   */
  static async open(options = {}) {
    await init({ module_or_path: options.wasm })
    return new DurableStreams(OPEN, options)
  }

  /** Use `DurableStreams.open()`. */
  constructor(token, options) {
    if (token !== OPEN) throw new TypeError("use DurableStreams.open() to create a DurableStreams")
    if (options.now !== undefined && typeof options.now !== "function") {
      throw new TypeError("now must be a function returning milliseconds since the epoch")
    }
    this.#clock = options.now ?? Date.now
    this.#webhookFetch = options.webhookFetch ?? ((...args) => globalThis.fetch(...args))
    this.#core = new Core(
      options.longPollTimeoutMs,
      options.maxChunkBytes,
      options.maxBodyBytes,
      options.allowLocalWebhooks,
      this.#now(),
      Math.floor(Math.random() * 2 ** 52),
    )
  }

  /** Number of parked long-polls and live SSE bodies. */
  get pending() {
    return this.#core ? this.#core.parked : 0
  }

  /**
   * Re-checks every deadline (long-poll timeouts, SSE keep-alives and
   * reconnects, stream expiry, subscription leases and webhook retries)
   * against the clock. Timers do this by themselves; call it after moving
   * an injected `now` clock forward.
   */
  tick() {
    if (!this.#core) return
    this.#core.onTimeout(this.#now())
    this.#deadlineAt = undefined
    this.#settle()
    for (const set of [...this.#waiters.values()]) for (const w of [...set]) w.wake()
  }

  /**
   * Exports every stream whose path (relative to `/v1/stream/`) starts with
   * `prefix` as one archive: data, offsets, content types, closure, forks,
   * TTLs and producer state. The format is the one
   * `durable-streams-server export` writes, so archives move both ways.
   */
  exportArchive({ prefix = "" } = {}) {
    const bytes = this.#live().exportArchive(prefix, this.#now())
    this.#settle()
    return bytes
  }

  /**
   * Imports an archive (a `Uint8Array` or `ArrayBuffer`). `onConflict` says
   * what happens to paths that already hold a stream: `"skip"` (default),
   * `"replace"`, or `"fail"` (then nothing is imported if any path is taken).
   * Resolves to `{ imported, replaced, skipped }`.
   */
  importArchive(archive, { onConflict = "skip" } = {}) {
    const bytes = archive instanceof Uint8Array ? archive : new Uint8Array(archive)
    const summary = this.#live().importArchive(bytes, onConflict, this.#now())
    this.#settle()
    for (const set of [...this.#waiters.values()]) for (const w of [...set]) w.wake()
    return summary
  }

  /**
   * Stops the server: parked long-polls are answered (204), SSE bodies end,
   * timers are cleared and the engine's memory is released. Later calls to
   * `fetch` reject.
   */
  close() {
    if (!this.#core) return
    for (const set of [...this.#waiters.values()]) for (const w of [...set]) w.end()
    clearTimeout(this.#deadlineTimer)
    this.#core.free()
    this.#core = undefined
  }

  #now() {
    return Number(this.#clock())
  }

  async #fetch(input, init) {
    const req = input instanceof Request && init === undefined ? input : new Request(input, init)
    if (req.signal.aborted) throw req.signal.reason
    const url = new URL(req.url)
    const body = await readBody(req, this.#live().maxBodyBytes)
    const headers = []
    for (const [name, value] of req.headers) headers.push(name, value)
    const core = this.#live()
    const answer = core.handle(req.method, url.pathname, url.search.slice(1), headers, body, this.#now())
    this.#settle()
    if (answer.wait !== undefined) return this.#longPoll(answer, req)
    return this.#respond(answer, req)
  }

  #live() {
    if (!this.#core) throw new TypeError("this DurableStreams server is closed")
    return this.#core
  }

  /**
   * Wakes readers of every path that advanced, sends queued webhooks, and
   * re-arms the timer of the engine's next deadline.
   */
  #settle() {
    for (const path of this.#core.takeAdvanced()) {
      const set = this.#waiters.get(path)
      if (set) for (const w of [...set]) w.wake()
    }
    for (const hook of this.#core.takeWebhooks()) this.#sendWebhook(hook)
    const at = this.#core.nextTimeout()
    if (at === this.#deadlineAt) return
    clearTimeout(this.#deadlineTimer)
    this.#deadlineAt = at
    if (at === undefined) return
    this.#deadlineTimer = this.#timer(at, () => {
      if (!this.#core) return
      this.#deadlineAt = undefined
      this.#core.onTimeout(this.#now())
      this.#settle()
    })
    // Engine deadlines alone (expiry, leases, retries) must not keep a Node
    // process alive.
    this.#deadlineTimer?.unref?.()
  }

  /** POSTs one webhook the engine signed, and reports how it went. */
  async #sendWebhook(hook) {
    let status = 0
    let body = new Uint8Array(0)
    let error
    try {
      const headers = new Headers()
      for (let i = 0; i < hook.headers.length; i += 2) headers.append(hook.headers[i], hook.headers[i + 1])
      const res = await this.#webhookFetch(hook.url, {
        method: "POST",
        headers,
        body: hook.body,
        redirect: "manual",
        signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
      })
      status = res.status
      body = await readLimited(res.body, WEBHOOK_MAX_RESPONSE)
    } catch (e) {
      error = String(e?.message ?? e) || "webhook failed"
    }
    if (!this.#core) return
    this.#core.webhookResult(hook.handle, status, body, error, this.#now())
    this.#settle()
  }

  /** Runs `fn` at clock time `at` (checked again by the caller). */
  #timer(at, fn) {
    return setTimeout(fn, Math.min(Math.max(at - this.#now(), 0), MAX_DELAY))
  }

  #park(waiter) {
    let set = this.#waiters.get(waiter.path)
    if (!set) this.#waiters.set(waiter.path, (set = new Set()))
    set.add(waiter)
  }

  #unpark(waiter) {
    const set = this.#waiters.get(waiter.path)
    if (set?.delete(waiter) && set.size === 0) this.#waiters.delete(waiter.path)
  }

  #respond(answer, req) {
    const headers = new Headers()
    for (let i = 0; i < answer.headers.length; i += 2) headers.append(answer.headers[i], answer.headers[i + 1])
    let body = null
    if (answer.sse !== undefined) body = this.#sseBody(answer.sse, new URL(req.url).pathname, req.signal)
    else if (answer.body && !NULL_BODY.has(answer.status) && req.method !== "HEAD") body = answer.body
    return new Response(body, { status: answer.status, headers })
  }

  /** A pending promise, settled when the engine answers the long-poll. */
  #longPoll(first, req) {
    return new Promise((resolve, reject) => {
      const { signal } = req
      let timer
      const waiter = { path: first.path }
      const stop = () => {
        clearTimeout(timer)
        this.#unpark(waiter)
        signal.removeEventListener("abort", onAbort)
      }
      const onAbort = () => {
        stop()
        this.#core?.cancel(first.wait)
        reject(signal.reason)
      }
      const retry = (now) => {
        if (!this.#core) return
        const next = this.#core.resume(first.wait, now)
        this.#settle()
        if (next === undefined) return
        if (next.wait !== undefined) {
          clearTimeout(timer)
          timer = this.#timer(next.deadline, () => retry(this.#now()))
          return
        }
        stop()
        resolve(this.#respond(next, req))
      }
      waiter.wake = () => retry(this.#now())
      // Closing the server answers as a timeout would.
      waiter.end = () => retry(first.deadline)
      signal.addEventListener("abort", onAbort, { once: true })
      this.#park(waiter)
      timer = this.#timer(first.deadline, () => retry(this.#now()))
    })
  }

  /**
   * A text/event-stream body. The engine is polled only while the reader
   * wants data (pull); when it has nothing new, the pull waits for an
   * advance of the stream or the engine's next wake-up time. The body ends
   * when the engine says so (EOF, deletion, reconnect interval), or when the
   * reader cancels or the request is aborted, which releases the session.
   */
  #sseBody(handle, path, signal) {
    let done = false
    let wakeUp
    let timer
    let controller
    const waiter = { path, wake: () => wakeUp?.() }
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(timer)
      this.#unpark(waiter)
      this.#core?.cancel(handle)
      signal.removeEventListener("abort", onAbort)
      wakeUp?.()
    }
    const onAbort = () => {
      finish()
      try {
        controller.error(signal.reason)
      } catch {
        // Already closed.
      }
    }
    waiter.end = () => {
      finish()
      try {
        controller.close()
      } catch {
        // Already closed.
      }
    }
    return new ReadableStream({
      start: (c) => {
        controller = c
        signal.addEventListener("abort", onAbort, { once: true })
      },
      pull: async (c) => {
        while (!done) {
          const step = this.#core?.ssePoll(handle, this.#now())
          if (this.#core) this.#settle()
          if (step === undefined || step.wakeAt === null) {
            if (step?.bytes.length) c.enqueue(step.bytes)
            finish()
            c.close()
            return
          }
          if (step.bytes.length) {
            c.enqueue(step.bytes)
            return
          }
          await new Promise((resolve) => {
            wakeUp = resolve
            this.#park(waiter)
            timer = this.#timer(step.wakeAt, resolve)
          })
          wakeUp = undefined
          clearTimeout(timer)
          this.#unpark(waiter)
        }
      },
      cancel: finish,
    })
  }
}

/**
 * The request body, read up to one byte past `limit`: enough for the
 * engine to answer 413 without holding an oversized body.
 */
async function readBody(req, limit) {
  if (req.body === null || req.method === "GET" || req.method === "HEAD") return new Uint8Array(0)
  if (req.body === undefined) return new Uint8Array(await req.arrayBuffer()) // no Request.body support
  return readLimited(req.body, limit)
}

/** Up to `limit + 1` bytes of a body stream (empty for none). */
async function readLimited(stream, limit) {
  if (!stream) return new Uint8Array(0)
  const reader = stream.getReader()
  const parts = []
  let size = 0
  while (size <= limit) {
    const { done, value } = await reader.read()
    if (done) break
    parts.push(value)
    size += value.byteLength
  }
  if (size > limit) reader.cancel().catch(() => {})
  const out = new Uint8Array(Math.min(size, limit + 1))
  let at = 0
  for (const part of parts) {
    const take = Math.min(part.byteLength, out.length - at)
    out.set(part.subarray(0, take), at)
    at += take
  }
  return out
}
