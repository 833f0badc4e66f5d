// The inspector: every local stream (from the registry, and the registry
// itself) with its content type, tail offset, closed state and contents,
// kept current with plain fetch: one catch-up read from offset -1, then
// long-polls from the tail (echoing Stream-Cursor), until the stream is
// closed or deleted.

import { h, replace, offsetView, hexDump } from "./dom.js"
import { streamUrl } from "./net.js"
import { REGISTRY } from "./registry.js"
import { isJson } from "./follow.js"

const MAX_SHOWN = 60

export class Inspector {
  #net
  #registry
  #views = new Map()
  #el = {}

  constructor({ net, registry }) {
    this.#net = net
    this.#registry = registry
    this.element = this.#render()
    registry.addEventListener("change", () => this.#sync())
    this.#sync()
  }

  #render() {
    this.#el.list = h("div.inspector-list")
    return h(
      "section.card#inspector",
      { "aria-labelledby": "inspector-title" },
      h("div.card-head", {}, h("h2#inspector-title", "Inspector"), h("span.tag", "fetch · long-poll")),
      h(
        "p.lede",
        "Every local stream, straight from the server: a catch-up read from offset -1, then long-polls from the tail. JSON is pretty-printed, other content types are shown as bytes in hex. The last entry is the page's own registry, itself a stream.",
      ),
      this.#el.list,
    )
  }

  #sync() {
    const names = [...this.#registry.streams.keys(), REGISTRY]
    for (const [name, view] of this.#views) {
      if (!names.includes(name)) {
        view.stop()
        this.#views.delete(name)
      }
    }
    for (const name of names) {
      const info = name === REGISTRY ? { name, contentType: "application/json" } : this.#registry.streams.get(name)
      let view = this.#views.get(name)
      if (!view) {
        view = new StreamView(name, info, this.#net, this.#registry)
        this.#views.set(name, view)
        view.start()
      }
      view.info = info
    }
    replace(this.#el.list, names.map((n) => this.#views.get(n).element))
  }
}

class StreamView {
  element
  info
  #name
  #net
  #registry
  #abort = new AbortController()
  #state = { contentType: undefined, tail: undefined, closed: false, gone: false, items: [], bytes: new Uint8Array(0), error: undefined }
  #details
  #open

  constructor(name, info, net, registry) {
    this.#name = name
    this.info = info
    this.#net = net
    this.#registry = registry
    this.#open = name !== REGISTRY
    this.element = h("details.stream", { "data-stream": name, open: this.#open, ontoggle: (e) => (this.#open = e.target.open) })
    this.#paint()
  }

  stop() {
    this.#abort.abort()
  }

  async start() {
    const fetch = this.#net.traced(this.#name === REGISTRY ? "registry" : "inspector")
    const s = this.#state
    let offset = "-1"
    let cursor
    let upToDate = false
    const signal = this.#abort.signal
    while (!signal.aborted) {
      const q = new URLSearchParams({ offset })
      if (upToDate) {
        q.set("live", "long-poll")
        if (cursor) q.set("cursor", cursor)
      }
      let res
      try {
        res = await fetch(`${streamUrl(this.#name)}?${q}`, { signal })
      } catch {
        if (signal.aborted) return
        s.error = "The local server did not answer; retrying."
        this.#paint()
        await new Promise((resolve) => setTimeout(resolve, 1000))
        continue
      }
      if (res.status === 404 || res.status === 410) {
        s.gone = res.status === 410 ? "deleted" : "not found"
        this.#paint()
        return
      }
      if (!res.ok && res.status !== 204) {
        s.error = `${res.status} from the server; retrying.`
        this.#paint()
        await new Promise((resolve) => setTimeout(resolve, 1000))
        continue
      }
      s.error = undefined
      s.contentType = res.headers.get("content-type") ?? s.contentType
      offset = res.headers.get("stream-next-offset") ?? offset
      cursor = res.headers.get("stream-cursor") ?? cursor
      upToDate = res.status === 204 || res.headers.get("stream-up-to-date") === "true"
      s.closed = res.headers.get("stream-closed") === "true"
      s.tail = offset
      if (res.status === 200) {
        if (isJson(s.contentType ?? this.info?.contentType)) {
          const items = await res.json()
          s.items.push(...(Array.isArray(items) ? items : [items]))
        } else {
          const more = new Uint8Array(await res.arrayBuffer())
          if (more.length) {
            const all = new Uint8Array(s.bytes.length + more.length)
            all.set(s.bytes)
            all.set(more, s.bytes.length)
            s.bytes = all
          }
        }
      }
      this.#paint()
      // Closed and read to the end: nothing will ever change again.
      if (s.closed && upToDate) return
    }
  }

  async #delete() {
    const res = await this.#net.traced("inspector")(streamUrl(this.#name), { method: "DELETE" })
    if (res.ok || res.status === 404) await this.#registry.remove(this.#name)
  }

  #paint() {
    const s = this.#state
    const info = this.info ?? {}
    const contentType = s.contentType ?? info.contentType
    const json = isJson(contentType)
    const registry = this.#name === REGISTRY
    let body
    if (s.gone) {
      body = h("p.empty", `This stream is ${s.gone}.`)
    } else if (json) {
      const shown = s.items.slice(-MAX_SHOWN)
      const skipped = s.items.length - shown.length
      body = s.items.length
        ? h(
            "ol.json-list",
            { start: skipped + 1 },
            shown.map((item) => h("li", h("pre", JSON.stringify(item, null, 2)))),
          )
        : h("p.empty", "Empty.")
    } else {
      // 16 bytes a row where there is room, 8 in narrow columns.
      const width = this.element.clientWidth > 560 || !this.element.isConnected ? 16 : 8
      body = s.bytes.length ? h("pre.hex", hexDump(s.bytes, width)) : h("p.empty", "Empty.")
    }
    const size = json ? `${s.items.length} message${s.items.length === 1 ? "" : "s"}` : `${s.bytes.length} byte${s.bytes.length === 1 ? "" : "s"}`
    replace(
      this.element,
      h(
        "summary",
        {},
        h("span.stream-name", registry ? "_registry" : this.#name),
        h("span.stream-size", size),
        h("span.pill", { "data-status": s.gone ? "error" : s.closed ? "eof" : "live" }, s.gone ? "gone" : s.closed ? "closed" : "open"),
      ),
      h(
        "dl.facts",
        {},
        h("dt", "content-type"),
        h("dd", h("code", contentType ?? "…")),
        h("dt", "tail offset"),
        h("dd", offsetView(s.tail)),
        h("dt", "closed"),
        h("dd", s.closed ? "yes: Stream-Closed: true (EOF)" : "no"),
        info.forkOf ? [h("dt", "forked from"), h("dd", {}, h("b", info.forkOf.name), " at ", offsetView(info.forkOf.offset))] : null,
        registry ? [h("dt", "what"), h("dd", "the list of streams this page keeps (the protocol has no list request)")] : null,
      ),
      s.error ? h("p.note", { "data-kind": "error" }, s.error) : null,
      h("div.contents", body),
      registry || s.gone ? null : h("div.stream-actions", {}, h("button.ghost.small", { type: "button", onclick: () => this.#delete() }, "Delete (DELETE)")),
    )
    this.element.open = this.#open
  }
}
