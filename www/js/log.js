// The protocol panel: each request the page sent, the response headers that
// came back, and what the exchange means in protocol terms.

import { h, replace, clock, REASONS } from "./dom.js"
import { explain, operation, PROTOCOL_HEADERS } from "./net.js"

const SHOWN = 60
const REQUEST_HEADERS = /^(content-type|stream-|producer-|if-none-match)/i

export class ProtocolLog {
  #net
  #el = {}
  #rows = new Map()
  #open = new Set()
  #hidden = new Set(["inspector"])

  constructor({ net }) {
    this.#net = net
    this.element = this.#render()
    net.addEventListener("add", (e) => this.#add(e.detail))
    net.addEventListener("update", (e) => this.#update(e.detail))
    for (const entry of net.entries) this.#add(entry)
  }

  #render() {
    const toggle = (source, label) =>
      h(
        "label.check",
        {},
        h("input", {
          type: "checkbox",
          checked: !this.#hidden.has(source),
          onchange: (e) => {
            if (e.target.checked) this.#hidden.delete(source)
            else this.#hidden.add(source)
            this.#refilter()
          },
        }),
        label,
      )
    this.#el.list = h("ol.log-list", { "aria-live": "off" })
    return h(
      "section.card#protocol",
      { "aria-labelledby": "protocol-title" },
      h("div.card-head", {}, h("h2#protocol-title", "Protocol"), h("span.tag", "requests · response headers")),
      h("p.lede", "What each action sent over (local) HTTP and what came back, newest first. Open an entry for its headers."),
      h("div.log-filters", {}, h("span", "Also show:"), toggle("registry", "registry"), toggle("inspector", "inspector polling")),
      this.#el.list,
    )
  }

  #visible(entry) {
    return !this.#hidden.has(entry.source)
  }

  #add(entry) {
    // The newest request of a user action is opened; the others stay closed.
    if (this.#visible(entry) && entry.source !== "registry") {
      this.#open.clear()
      this.#open.add(entry.id)
    }
    const row = this.#row(entry)
    this.#rows.set(entry.id, row)
    this.#el.list.prepend(row)
    while (this.#rows.size > this.#net.limit) {
      const [oldest] = this.#rows.keys()
      this.#rows.get(oldest).remove()
      this.#rows.delete(oldest)
    }
    this.#refilter()
  }

  #update(entry) {
    const old = this.#rows.get(entry.id)
    if (!old) return
    const row = this.#row(entry)
    old.replaceWith(row)
    this.#rows.set(entry.id, row)
    row.hidden = old.hidden
  }

  #refilter() {
    let shown = 0
    for (const row of [...this.#rows.values()].reverse()) {
      const visible = !this.#hidden.has(row.dataset.source) && shown < SHOWN
      row.hidden = !visible
      if (visible) shown++
    }
  }

  #row(entry) {
    const op = operation(entry)
    const status =
      entry.state === "pending" ? h("span.status.pending", "…") : entry.state === "done" ? h("span.status", { "data-class": String(entry.status)[0] }, `${entry.status} ${REASONS[entry.status] ?? ""}`) : h("span.status.failed", entry.state)
    const requestHeaders = entry.requestHeaders.filter(([n]) => REQUEST_HEADERS.test(n))
    const protocol = entry.responseHeaders.filter(([n]) => PROTOCOL_HEADERS.has(n))
    const others = entry.responseHeaders.filter(([n]) => !PROTOCOL_HEADERS.has(n))
    const headerLines = (list) => list.map(([n, v]) => h("div.hl", {}, h("span.hn", `${n}:`), " ", h("span.hv", v)))
    const details = h(
      "details.log-entry",
      {
        "data-source": entry.source,
        "data-op": op,
        open: this.#open.has(entry.id),
        ontoggle: (e) => (e.target.open ? this.#open.add(entry.id) : this.#open.delete(entry.id)),
      },
      h(
        "summary",
        {},
        h("span.src", entry.source),
        h("span.method", { "data-method": entry.method }, entry.method),
        h("span.target", entry.path.replace(/^\/v1\/stream\/local\//, "…/local/"), entry.query ? h("span.query", decodeURIComponent(entry.query)) : null),
        status,
      ),
      h("p.explain", explain(entry).split("`").map((part, i) => (i % 2 ? h("code", part) : part))),
      h(
        "div.exchange",
        {},
        h(
          "div.req",
          {},
          h("div.dir", `→ ${entry.method} ${entry.path}${decodeURIComponent(entry.query)}`),
          headerLines(requestHeaders),
          entry.body ? h("pre.body", entry.body) : null,
        ),
        h(
          "div.res",
          {},
          h("div.dir", entry.state === "done" ? `← ${entry.status} ${REASONS[entry.status] ?? ""}` : entry.state === "pending" ? "← (waiting)" : `← ${entry.state}`),
          headerLines(protocol),
          others.length ? h("div.hl.more", `+ ${others.length} CORS and security headers (${others.map(([n]) => n).join(", ")})`) : null,
          op === "sse" && entry.status === 200 ? h("div.hl.more", "body: text/event-stream, open while the reader follows") : null,
        ),
      ),
      h("div.when", `${clock(entry.at)}${entry.ms !== undefined ? ` · ${entry.ms < 1 ? "<1" : Math.round(entry.ms)} ms` : ""}`),
    )
    details.dataset.source = entry.source.startsWith("reader") ? "reader" : entry.source
    return details
  }
}
