// Every request the page sends goes through a traced fetch: it forwards to
// the local server (the Service Worker, or an in-page DurableStreams) and
// records the request and the response headers for the protocol panel,
// together with a plain-language account of what the exchange means.

/** Where the local streams live: the Service Worker answers this prefix. */
export const PREFIX = "/v1/stream/local/"

/** The URL of the local stream `name`. */
export function streamUrl(name) {
  return new URL(PREFIX + name, location.origin).href
}

/** The path of the local stream `name` (what Stream-Forked-From names). */
export function streamPath(name) {
  return PREFIX + name
}

export class Net extends EventTarget {
  /** Recorded exchanges, oldest first (at most `limit`). */
  entries = []
  limit = 200
  #fetch
  #next = 1

  /** `fetchImpl` serves the requests: globalThis.fetch or local.fetch. */
  constructor(fetchImpl) {
    super()
    this.#fetch = fetchImpl
  }

  /** A fetch-compatible function whose requests are recorded as `source`. */
  traced(source) {
    return (input, init) => this.#run(source, input, init)
  }

  async #run(source, input, init) {
    const req = new Request(input, init)
    const url = new URL(req.url)
    const entry = {
      id: this.#next++,
      source,
      method: req.method,
      path: url.pathname,
      query: url.search,
      requestHeaders: [...req.headers],
      body: undefined,
      at: Date.now(),
      state: "pending",
      status: undefined,
      responseHeaders: [],
      ms: undefined,
    }
    if (req.body !== null && req.method !== "GET" && req.method !== "HEAD") {
      const text = await req.clone().text()
      entry.body = text.length > 600 ? `${text.slice(0, 600)}…` : text
    }
    this.#emit("add", entry)
    const started = performance.now()
    try {
      const res = await this.#fetch(req)
      entry.state = "done"
      entry.status = res.status
      entry.responseHeaders = [...res.headers]
      entry.ms = performance.now() - started
      this.#emit("update", entry)
      return res
    } catch (error) {
      entry.state = req.signal.aborted ? "cancelled" : "failed"
      entry.error = String(error?.message ?? error)
      entry.ms = performance.now() - started
      this.#emit("update", entry)
      throw error
    }
  }

  #emit(kind, entry) {
    if (kind === "add") {
      this.entries.push(entry)
      if (this.entries.length > this.limit) this.entries.splice(0, this.entries.length - this.limit)
    }
    this.dispatchEvent(new CustomEvent(kind, { detail: entry }))
  }
}

/** A header of a recorded request or response (case-insensitive). */
export function header(list, name) {
  const found = list.find(([n]) => n.toLowerCase() === name)
  return found?.[1]
}

/** What kind of protocol operation an exchange is. */
export function operation(entry) {
  const q = new URLSearchParams(entry.query)
  switch (entry.method) {
    case "PUT":
      return header(entry.requestHeaders, "stream-forked-from") ? "fork" : "create"
    case "POST":
      if (header(entry.requestHeaders, "stream-closed")?.toLowerCase() === "true" && !entry.body) return "close"
      return "append"
    case "GET":
      if (q.get("live") === "sse") return "sse"
      if (q.get("live") === "long-poll") return "long-poll"
      return "read"
    case "HEAD":
      return "head"
    case "DELETE":
      return "delete"
    default:
      return entry.method.toLowerCase()
  }
}

function fromWhere(entry) {
  const offset = new URLSearchParams(entry.query).get("offset")
  if (offset === null || offset === "-1") return "from the beginning (offset=-1)"
  if (offset === "now") return "from the current tail (offset=now)"
  return "after the saved offset"
}

/** One or two sentences on what this exchange did, in protocol terms. */
export function explain(entry) {
  const status = entry.status
  const op = operation(entry)
  const closed = header(entry.responseHeaders, "stream-closed")?.toLowerCase() === "true"
  if (entry.state === "pending") {
    if (op === "long-poll") return "Long-poll: the server holds this request open until data arrives after the offset (or answers 204 after a timeout)."
    return "Waiting for the answer…"
  }
  if (entry.state === "cancelled") return "Cancelled by the page (the reader was closed); the server releases the waiting reader."
  if (entry.state === "failed") return `The request failed before an answer arrived: ${entry.error}.`
  if (status === 404) return "No stream at this path (never created, deleted, or lost when the local server restarted)."
  if (status === 410) return "Gone: the stream was deleted (its data lives on only for forks that still reference it)."
  if (op === "create") {
    if (status === 201) return "Created a new stream. Location names it; Stream-Next-Offset is its tail, where the first append will go."
    if (status === 200) return "The stream already existed with the same configuration, so this PUT changed nothing and succeeded: creation is idempotent."
    if (status === 409) return "Conflict: a stream with this name already exists with a different configuration."
  }
  if (op === "fork") {
    if (status === 201) return "Created a fork: a new stream that shares the source's data up to Stream-Fork-Offset (nothing is copied) and continues on its own from there."
    if (status === 400) return "The fork point was refused: Stream-Fork-Offset must be an offset of the source no later than its tail."
  }
  if (op === "append") {
    if (status === 204 || status === 200) return "Appended. Stream-Next-Offset is the new tail: the offset a reader saves to continue right after this data."
    if (status === 409 && closed) return "Refused: the stream is closed (Stream-Closed: true), so nothing more can be appended."
  }
  if (op === "close" && (status === 204 || status === 200)) {
    return "Closed the stream: a POST with Stream-Closed: true and no body. No more appends are accepted; readers that reach the tail see Stream-Closed: true, which means end of stream (EOF)."
  }
  if (op === "read" && status === 200) {
    return `Catch-up read ${fromWhere(entry)}: the data up to the tail. Stream-Next-Offset is where to continue${
      header(entry.responseHeaders, "stream-up-to-date") ? "; Stream-Up-To-Date says this reader now has everything written so far" : ""
    }${closed ? "; Stream-Closed: true says nothing more will ever come (EOF)" : ""}.`
  }
  if (op === "long-poll") {
    if (status === 204) return closed ? "The stream is closed and this reader is at its end: EOF, so it stops asking." : "No new data before the long-poll timeout (204): ask again from Stream-Next-Offset."
    if (status === 200) return "Long-poll answered as soon as new data arrived after the offset; Stream-Next-Offset is the next position to ask from."
  }
  if (op === "sse" && status === 200) {
    return `Live read over Server-Sent Events ${fromWhere(entry)}. The response stays open: each \`data\` event carries messages and the \`control\` event after it carries streamNextOffset, which the reader saves so it can resume exactly there.`
  }
  if (op === "head" && status === 200) return "Metadata only, no body: content type, tail offset (Stream-Next-Offset), and Stream-Closed when the stream is closed."
  if (op === "delete" && (status === 204 || status === 200)) return "Deleted the stream. Forks of it keep working: they still read the shared history."
  if (status >= 400) return "The server refused the request; the body is a problem+json document saying why."
  return ""
}

/** Response headers worth showing first (the rest are CORS and security headers). */
export const PROTOCOL_HEADERS = new Set([
  "content-type",
  "location",
  "etag",
  "cache-control",
  "stream-next-offset",
  "stream-up-to-date",
  "stream-closed",
  "stream-cursor",
  "stream-forked-from",
  "stream-fork-offset",
  "stream-ttl",
  "stream-expires-at",
  "producer-epoch",
  "producer-seq",
])
