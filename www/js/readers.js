// Readers: each follows one stream live over SSE with the official client
// and saves, after every batch, what it has shown and the offset it reached
// (localStorage, in one write). Closed and reopened — or after a reload — it
// resumes from that offset: nothing missed, nothing repeated.

import { h, replace, offsetView } from "./dom.js"
import { follow, isJson } from "./follow.js"
import { readersStore } from "./store.js"

const KEEP = 400

// A page being unloaded aborts its live requests: that is not an error of
// the reader, and must not be saved as one.
let leaving = false
addEventListener("pagehide", () => (leaving = true))
addEventListener("pageshow", () => (leaving = false))

export class Readers {
  #net
  #registry
  #readers
  #sessions = new Map()
  #el = {}

  constructor({ net, registry }) {
    this.#net = net
    this.#registry = registry
    this.#readers = readersStore.load()
    this.element = this.#render()
    registry.addEventListener("change", () => this.#syncStreams())
    this.#syncStreams()
    this.#renderAll()
    // Readers that were open when the page was left resume by themselves.
    for (const r of this.#readers) if (r.follow) this.open(r.id)
  }

  #render() {
    const el = this.#el
    el.select = h("select", { id: "reader-stream", "aria-label": "Stream to follow" })
    el.list = h("div.reader-list")
    return h(
      "section.card#readers",
      { "aria-labelledby": "readers-title" },
      h("div.card-head", {}, h("h2#readers-title", "Readers"), h("span.tag", "SSE · resumable")),
      h(
        "p.lede",
        "Each reader follows a stream live and saves its offset in localStorage after every batch. Close one, append more, reopen it: it continues exactly where it stopped. Open this page in a second tab to watch from there.",
      ),
      h(
        "form.toolbar",
        { onsubmit: (e) => (e.preventDefault(), this.add(el.select.value)) },
        h("label.field.grow", {}, h("span", "Follow"), el.select),
        h("button.primary", { type: "submit" }, "Add reader"),
      ),
      el.list,
    )
  }

  #syncStreams() {
    const select = this.#el.select
    const current = select.value
    const names = [...this.#registry.streams.keys()]
    replace(select, names.map((n) => h("option", { value: n }, n)))
    if (names.includes(current)) select.value = current
  }

  #persist() {
    readersStore.save(this.#readers.map((r) => ({ ...r, items: r.items.slice(-KEEP) })))
  }

  #get(id) {
    return this.#readers.find((r) => r.id === id)
  }

  /** Adds a reader of stream `name`, from its beginning. */
  add(name) {
    const info = this.#registry.streams.get(name)
    if (!info) return
    const n = this.#readers.reduce((max, r) => Math.max(max, r.n), 0) + 1
    const reader = { id: `r${n}`, n, name, contentType: info.contentType, offset: "-1", status: "closed", follow: true, items: [] }
    this.#readers.push(reader)
    this.#persist()
    this.#renderAll()
    return this.open(reader.id)
  }

  /** Opens (or reopens) a reader: resumes from its saved offset. */
  async open(id) {
    const r = this.#get(id)
    if (!r || this.#sessions.has(id)) return
    if (r.offset !== "-1") {
      const last = r.items.at(-1)
      if (!(last?.t === "resume" && last.offset === r.offset)) r.items.push({ t: "resume", offset: r.offset })
    }
    r.status = "connecting"
    r.follow = true
    r.error = undefined
    this.#persist()
    this.#renderOne(r)
    // Taken before the first await, so a second click cannot open twice.
    const slot = {
      cancelled: false,
      session: undefined,
      cancel() {
        this.cancelled = true
        this.session?.cancel()
      },
    }
    this.#sessions.set(id, slot)
    const session = await follow({
      fetch: this.#net.traced(`reader ${r.n}`),
      name: r.name,
      contentType: r.contentType,
      offset: r.offset,
      onOpen: () => {
        if (r.status !== "connecting") return
        r.status = "live"
        this.#persist()
        this.#renderOne(r)
      },
      onBatch: (batch) => {
        if (isJson(r.contentType)) for (const item of batch.items) r.items.push({ t: "m", v: item })
        else if (batch.text) r.items.push({ t: "x", v: batch.text })
        r.offset = batch.end
        this.#persist()
        this.#renderOne(r)
      },
      onEnd: ({ eof, error, cancelled }) => {
        if (this.#sessions.get(id) === slot) this.#sessions.delete(id)
        if (!this.#get(id) || leaving) return
        if (eof) {
          r.status = "eof"
          r.follow = false
          if (r.items.at(-1)?.t !== "eof") r.items.push({ t: "eof", offset: r.offset })
        } else if (error) {
          r.status = "error"
          r.error = error.status === 404 || /404|not found/i.test(error.message) ? "The stream is gone (deleted, or lost when the local server restarted)." : error.message
        } else if (cancelled) {
          r.status = "closed"
        }
        this.#persist()
        this.#renderOne(r)
      },
    })
    slot.session = session
    if (slot.cancelled) session.cancel()
  }

  /** Closes a reader: cancels its live request; its offset stays saved. */
  close(id) {
    const session = this.#sessions.get(id)
    this.#sessions.delete(id)
    session?.cancel()
    const r = this.#get(id)
    if (r) r.follow = false
    if (r && r.status !== "eof") {
      r.status = "closed"
      this.#persist()
      this.#renderOne(r)
    }
  }

  remove(id) {
    this.close(id)
    this.#readers = this.#readers.filter((r) => r.id !== id)
    this.#persist()
    this.#renderAll()
  }

  #renderAll() {
    if (!this.#readers.length) {
      replace(this.#el.list, h("p.empty", "No readers in this tab yet. Add one above."))
      return
    }
    replace(this.#el.list, this.#readers.map((r) => this.#card(r)))
  }

  #renderOne(r) {
    const old = this.#el.list.querySelector(`[data-reader="${r.id}"]`)
    if (!old) return this.#renderAll()
    const body = old.querySelector(".reader-items")
    const scrolled = body && body.scrollHeight - body.scrollTop - body.clientHeight > 40
    const card = this.#card(r)
    old.replaceWith(card)
    const items = card.querySelector(".reader-items")
    items.scrollTop = scrolled ? body.scrollTop : items.scrollHeight
  }

  #card(r) {
    const live = r.status === "live" || r.status === "connecting"
    const STATUS = { live: "live · SSE", connecting: "connecting…", closed: "closed", eof: "EOF", error: "error" }
    const rows = []
    let count = 0
    for (const item of r.items) {
      if (item.t === "m") {
        count++
        const v = item.v
        const chat = v && typeof v === "object" && typeof v.text === "string"
        rows.push(
          h(
            "li.r-msg",
            { "data-id": chat ? v.id : "" },
            chat ? [h("b", String(v.from ?? "?")), " ", v.text] : h("code", JSON.stringify(v)),
          ),
        )
      } else if (item.t === "x") {
        const prev = rows.at(-1)
        if (prev?.classList.contains("r-text")) prev.append(item.v)
        else rows.push(h("li.r-text", item.v))
      } else if (item.t === "resume") {
        rows.push(h("li.r-mark.resume", {}, "↻ resumed from ", offsetView(item.offset)))
      } else if (item.t === "eof") {
        rows.push(h("li.r-mark.eof", {}, "■ EOF: the stream is closed; nothing more will come"))
      }
    }
    if (!rows.length) rows.push(h("li.r-mark", r.status === "connecting" ? "Catching up…" : "Nothing yet."))
    return h(
      "article.reader",
      { "data-reader": r.id, "data-status": r.status },
      h(
        "header.reader-head",
        {},
        h("h3", {}, `Reader ${r.n}`, h("span.on", " on "), h("b", r.name)),
        h("span.pill", { "data-status": r.status }, STATUS[r.status] ?? r.status),
      ),
      h("ol.reader-items", rows),
      r.error ? h("p.note", { "data-kind": "error" }, r.error) : null,
      h(
        "footer.reader-foot",
        {},
        h(
          "span.saved",
          { title: "Saved in localStorage after every batch, with the items shown above" },
          isJson(r.contentType) ? `${count} message${count === 1 ? "" : "s"} · ` : "",
          "saved offset ",
          r.offset === "-1" ? h("code.offset", "-1 (start)") : offsetView(r.offset),
        ),
        h(
          "span.reader-buttons",
          {},
          live
            ? h("button.ghost.small", { type: "button", "data-action": "close", onclick: () => this.close(r.id) }, "Close")
            : h("button.secondary.small", { type: "button", "data-action": "reopen", onclick: () => this.open(r.id) }, r.status === "eof" ? "Reopen" : "Reopen (resume)"),
          h("button.ghost.small", { type: "button", "data-action": "remove", "aria-label": `Remove reader ${r.n}`, onclick: () => this.remove(r.id) }, "Remove"),
        ),
      ),
    )
  }
}
