// The writer: picks a stream, appends to it with @durable-streams/client,
// closes it, forks it after any message. Its transcript follows the stream
// live (SSE) like any reader.

import { DurableStream, StreamClosedError } from "@durable-streams/client"
import { h, replace, offsetView, clock, icon, randomId } from "./dom.js"
import { streamUrl, streamPath } from "./net.js"
import { REGISTRY } from "./registry.js"
import { follow, isJson } from "./follow.js"
import { ends, shared, tabState, tabId } from "./store.js"

const AUTHORS = ["ada", "grace", "alan", "edsger", "barbara", "ken", "radia", "leslie"]
const REPLIES = [
  "Durable Streams give every byte an offset. A reader that saves the last offset it saw can go away — close the tab, lose the network, reload — and later ask for exactly what came after. Nothing is missed and nothing is repeated, because the server, not the reader, keeps the history.",
  "Think of a token stream from a language model: the writer appends tokens as they are generated, readers follow live over Server-Sent Events, and a reader that reconnects resumes mid-answer from its offset instead of starting over.",
  "Here the server is a WebAssembly build of the Rust engine, running inside a Service Worker. Every tab of this page talks to it with ordinary fetch calls, so the protocol you see in the panel below is the same one a real server speaks.",
]

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export class Writer {
  #net
  #registry
  #el = {}
  #name
  #follow
  #generation = 0
  #messages = []
  #text = ""
  #closed = false
  #busy = false
  #forkTarget
  #lastNextOffset
  #tail

  constructor({ net, registry }) {
    this.#net = net
    this.#registry = registry
    this.element = this.#render()
    registry.addEventListener("change", () => this.#syncStreams())
    this.#syncStreams()
  }

  #render() {
    const el = this.#el
    el.select = h("select", { id: "writer-stream", onchange: () => this.select(el.select.value) })
    el.newForm = h(
      "form.inline-form",
      { hidden: true, onsubmit: (e) => (e.preventDefault(), this.#create()) },
      h("label.field", {}, h("span", "Name"), (el.newName = h("input", { name: "name", required: true, placeholder: "e.g. support-chat", pattern: "[a-z0-9][a-z0-9\\-]{0,40}", title: "lower-case letters, digits and dashes", autocomplete: "off" }))),
      h(
        "label.field",
        {},
        h("span", "Content type"),
        (el.newType = h("select", { name: "type" }, h("option", { value: "application/json" }, "application/json — chat messages"), h("option", { value: "text/plain" }, "text/plain — token stream"))),
      ),
      h("div.form-buttons", {}, h("button.primary", { type: "submit" }, "Create (PUT)"), h("button.ghost", { type: "button", onclick: () => (el.newForm.hidden = true) }, "Cancel")),
    )
    el.meta = h("div.stream-meta")
    el.transcript = h("ol.transcript", { "aria-live": "polite" })
    el.forkForm = h(
      "form.inline-form.fork-form",
      { hidden: true, onsubmit: (e) => (e.preventDefault(), this.#fork()) },
      (el.forkLabel = h("p.fork-label")),
      h("label.field", {}, h("span", "Fork name"), (el.forkName = h("input", { name: "fork", required: true, pattern: "[a-z0-9][a-z0-9\\-]{0,40}", autocomplete: "off" }))),
      h("div.form-buttons", {}, h("button.primary", { type: "submit" }, "Create fork (PUT)"), h("button.ghost", { type: "button", onclick: () => (el.forkForm.hidden = true) }, "Cancel")),
    )
    el.from = h("input.author", {
      name: "from",
      "aria-label": "Your name",
      value: shared.get("author", AUTHORS[Math.floor(Math.random() * AUTHORS.length)]),
      onchange: () => shared.set("author", el.from.value.trim() || "anon"),
    })
    shared.set("author", el.from.value)
    el.text = h("input.message", { name: "text", placeholder: "Write a message…", autocomplete: "off", "aria-label": "Message" })
    el.send = h("button.primary", { type: "submit" }, "Append")
    el.composer = h("form.composer", { onsubmit: (e) => (e.preventDefault(), this.#send()) }, el.from, el.text, el.send)
    el.reply = h("button.secondary", { type: "button", hidden: true, onclick: () => this.#streamReply() }, "Stream a reply")
    el.forkTail = h("button.secondary", { type: "button", onclick: () => this.#openFork(undefined) }, "Fork at tail")
    el.close = h("button.danger", { type: "button", onclick: () => this.#close() }, "Close stream")
    el.note = h("p.note", { role: "status" })
    return h(
      "section.card#writer",
      { "aria-labelledby": "writer-title" },
      h("div.card-head", {}, h("h2#writer-title", "Writer"), h("span.tag", "@durable-streams/client")),
      h("p.lede", "Append to a stream, close it, or fork it after any message. The transcript below follows the stream live, like any reader."),
      h("div.toolbar", {}, h("label.field.grow", {}, h("span", "Stream"), el.select), h("button.ghost", { type: "button", onclick: () => this.#openNew() }, "New stream")),
      el.newForm,
      el.meta,
      el.transcript,
      el.forkForm,
      el.composer,
      h("div.actions", {}, el.reply, el.forkTail, el.close),
      el.note,
    )
  }

  #note(text, kind = "info") {
    this.#el.note.textContent = text
    this.#el.note.dataset.kind = kind
  }

  #syncStreams() {
    const streams = [...this.#registry.streams.values()]
    const select = this.#el.select
    const current = this.#name ?? tabState.get("writer", undefined)
    replace(
      select,
      streams.map((s) =>
        h("option", { value: s.name }, s.forkOf ? `${s.name}  (fork of ${s.forkOf.name})` : `${s.name}  (${isJson(s.contentType) ? "JSON" : s.contentType})`),
      ),
    )
    const pick = this.#registry.streams.has(current) ? current : streams[0]?.name
    if (pick !== undefined) select.value = pick
    if (pick !== this.#name) this.select(pick)
  }

  get info() {
    return this.#registry.streams.get(this.#name)
  }

  /** Shows stream `name` (undefined: none). */
  async select(name) {
    this.#follow?.cancel()
    this.#follow = undefined
    const generation = ++this.#generation
    this.#name = name
    this.#messages = []
    this.#text = ""
    this.#closed = false
    this.#el.forkForm.hidden = true
    this.#note("")
    if (name === undefined) {
      replace(this.#el.transcript, h("li.empty", "No streams yet: create one."))
      return
    }
    tabState.set("writer", name)
    this.#el.select.value = name
    const info = this.info
    const json = isJson(info?.contentType)
    this.#el.transcript.classList.toggle("text", !json)
    this.#el.reply.hidden = json
    this.#el.text.placeholder = json ? "Write a message…" : "Append some text…"
    this.#el.from.hidden = !json
    replace(this.#el.transcript, h("li.empty", "Reading…"))
    this.#renderMeta(undefined)
    this.#follow = await follow({
      fetch: this.#net.traced("writer"),
      name,
      contentType: info?.contentType,
      offset: "-1",
      onBatch: (batch) => {
        if (generation !== this.#generation) return
        if (json) {
          batch.items.forEach((item, index) => {
            this.#messages.push({ item, start: batch.start, index, last: index === batch.items.length - 1, end: batch.end })
          })
        } else {
          this.#text += batch.text
        }
        if (batch.closed) this.#closed = true
        this.#renderTranscript()
        this.#renderMeta(batch.end)
      },
      onEnd: ({ eof, error, cancelled }) => {
        if (generation !== this.#generation || cancelled) return
        if (eof) this.#closed = true
        if (error) this.#note(`Reading ${name} failed: ${error.message}`, "error")
        this.#renderTranscript()
        this.#renderMeta(this.#tail)
      },
    })
    if (generation !== this.#generation) this.#follow.cancel()
  }

  #renderMeta(tail) {
    this.#tail = tail
    const info = this.info
    if (!info) return replace(this.#el.meta)
    replace(
      this.#el.meta,
      h("span.chip", {}, "content-type ", h("code", info.contentType)),
      h("span.chip", {}, "tail ", offsetView(tail)),
      h("span.chip", { "data-state": this.#closed ? "closed" : "open" }, this.#closed ? "closed (EOF)" : "open"),
      info.forkOf ? h("span.chip.fork", {}, "fork of ", h("b", info.forkOf.name), " at ", offsetView(info.forkOf.offset)) : null,
    )
    for (const control of [this.#el.text, this.#el.send, this.#el.close, this.#el.reply]) control.disabled = this.#closed
    this.#el.composer.dataset.closed = this.#closed
    if (this.#closed) this.#el.text.placeholder = "Closed: no more appends. Fork it to continue."
  }

  #renderTranscript() {
    const list = this.#el.transcript
    const info = this.info
    const rows = []
    if (!isJson(info?.contentType)) {
      const shared = info?.forkOf?.chars ?? 0
      rows.push(
        h(
          "li.text-body",
          {},
          shared ? h("span.inherited", this.#text.slice(0, shared)) : null,
          shared ? h("span.fork-mark", { title: `Everything before this point is shared with ${info.forkOf.name}` }, icon("fork"), " fork point ") : null,
          this.#text.slice(shared),
          this.#busy ? h("span.caret", "▍") : null,
        ),
      )
      if (!this.#text) rows.unshift(h("li.empty", "Empty so far. Append text, or press “Stream a reply”."))
    } else {
      const inherited = info?.forkOf?.count ?? 0
      if (!this.#messages.length) rows.push(h("li.empty", "No messages yet."))
      this.#messages.forEach((m, i) => {
        rows.push(this.#messageRow(m, i, i < inherited))
        if (inherited && i === inherited - 1) {
          rows.push(h("li.divider.fork-divider", {}, h("span", {}, icon("fork"), ` forked from ${info.forkOf.name} here — everything above is shared history`)))
        }
      })
    }
    if (this.#closed) rows.push(h("li.divider.eof", {}, h("span", "■ end of stream — closed by its writer")))
    const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40
    replace(list, rows)
    if (stick) list.scrollTop = list.scrollHeight
  }

  #messageRow(m, index, inherited) {
    const item = m.item
    const chat = item && typeof item === "object" && typeof item.text === "string"
    const end = (chat && ends.get(item.id)) || (m.last ? m.end : undefined)
    const from = chat ? String(item.from ?? "?") : "json"
    return h(
      "li.msg",
      { class: inherited ? "inherited" : "", "data-id": chat ? item.id : "", "data-index": index },
      h("span.avatar", { "aria-hidden": "true", "data-hue": hue(from) }, from.slice(0, 1).toUpperCase()),
      h(
        "div.bubble",
        {},
        h("div.msg-meta", {}, h("b", from), chat && item.at ? ` · ${clock(item.at)}` : "", end ? [" · ends at ", offsetView(end, { compact: true })] : ""),
        chat ? h("div.msg-text", item.text) : h("pre.msg-json", JSON.stringify(item, null, 2)),
      ),
      h("button.fork-here", { type: "button", title: "Fork this stream right after this message", "aria-label": `Fork after message ${index + 1}`, onclick: () => this.#openFork(index) }, icon("fork"), h("span.label", "Fork here")),
    )
  }

  #handle(capture = false) {
    const fetch = this.#net.traced("writer")
    const wrapped = capture
      ? async (input, init) => {
          const res = await fetch(input, init)
          this.#lastNextOffset = res.headers.get("stream-next-offset") ?? undefined
          return res
        }
      : fetch
    return new DurableStream({ url: streamUrl(this.#name), contentType: this.info?.contentType, fetch: wrapped, batching: false, warnOnHttp: false })
  }

  async #send() {
    const text = this.#el.text.value.trim()
    if (!text || !this.#name) return
    const json = isJson(this.info?.contentType)
    const from = this.#el.from.value.trim() || "anon"
    shared.set("author", from)
    try {
      if (json) {
        const message = { id: randomId(8), from, text, at: Date.now() }
        await this.#handle(true).append(JSON.stringify(message))
        // The append's Stream-Next-Offset is exactly where this message ends.
        ends.learn(message.id, this.#lastNextOffset)
      } else {
        await this.#handle().append(`${text}\n`)
      }
      this.#el.text.value = ""
      this.#note("")
    } catch (error) {
      this.#failed(error)
    }
    this.#el.text.focus()
  }

  async #streamReply() {
    if (this.#busy || !this.#name) return
    this.#busy = true
    this.#el.reply.disabled = true
    const reply = REPLIES[Math.floor(Math.random() * REPLIES.length)]
    const handle = this.#handle()
    try {
      for (const token of reply.match(/\S+\s*/g)) {
        await handle.append(token)
        await sleep(35 + Math.random() * 50)
      }
      await handle.append("\n\n")
    } catch (error) {
      this.#failed(error)
    }
    this.#busy = false
    this.#el.reply.disabled = this.#closed
    this.#renderTranscript()
  }

  async #close() {
    if (!this.#name) return
    try {
      const result = await this.#handle().close()
      this.#note(`Closed ${this.#name} at offset ${result.finalOffset}. Readers see EOF once they reach it.`)
    } catch (error) {
      this.#failed(error)
    }
  }

  #failed(error) {
    if (error instanceof StreamClosedError || error?.code === "STREAM_CLOSED") {
      this.#note("This stream is closed: appends are refused (409). Fork it to continue the conversation.", "error")
    } else {
      this.#note(`Failed: ${error?.message ?? error}`, "error")
    }
  }

  #openNew() {
    this.#el.newForm.hidden = false
    this.#el.newName.value = ""
    this.#el.newName.focus()
  }

  async #create() {
    const name = this.#el.newName.value.trim()
    const contentType = this.#el.newType.value
    if (name === REGISTRY || name.startsWith("_")) return this.#note("Names starting with _ are reserved for the page's registry.", "error")
    let status
    const fetch = this.#net.traced("writer")
    try {
      const capture = async (input, init) => {
        const res = await fetch(input, init)
        status = res.status
        return res
      }
      await new DurableStream({ url: streamUrl(name), fetch: capture, warnOnHttp: false }).create({ contentType })
    } catch (error) {
      return this.#note(`Could not create ${name}: ${error.message}`, "error")
    }
    this.#el.newForm.hidden = true
    if (!this.#registry.streams.has(name)) await this.#registry.add({ name, contentType, by: tabId })
    this.#note(status === 201 ? `Created ${name} (201 Created).` : `${name} already existed with this content type (200 OK: create is idempotent).`)
    this.select(name)
  }

  /** Opens the fork form for "after message `index`" (undefined: at the tail). */
  #openFork(index) {
    if (!this.#name) return
    this.#forkTarget = index
    const el = this.#el
    el.forkLabel.textContent =
      index === undefined
        ? `Fork “${this.#name}” at its tail: the fork shares everything written so far.`
        : `Fork “${this.#name}” right after message ${index + 1}: the fork shares messages 1–${index + 1}, then continues on its own.`
    el.forkName.value = this.#registry.freeName(`${this.#name.replace(/-fork(-\d+)?$/, "")}-fork`)
    el.forkForm.hidden = false
    el.forkName.focus()
    el.forkForm.scrollIntoView({ block: "nearest" })
  }

  async #fork() {
    const source = this.#name
    const info = this.info
    const name = this.#el.forkName.value.trim()
    const index = this.#forkTarget
    if (this.#registry.streams.has(name)) return this.#note(`${name} already exists: pick another name.`, "error")
    const headers = { "Stream-Forked-From": streamPath(source) }
    let count
    let chars
    if (index !== undefined) {
      const m = this.#messages[index]
      const end = (m.item && ends.get(m.item.id)) || (m.last ? m.end : undefined)
      if (end) {
        headers["Stream-Fork-Offset"] = end
      } else if (m.start !== "-1") {
        // Inside a batch whose inner offsets this page never saw: anchor at
        // the batch start and count whole messages past it.
        headers["Stream-Fork-Offset"] = m.start
        headers["Stream-Fork-Sub-Offset"] = String(m.index + 1)
      } else {
        return this.#note("This page does not know the offset right after that message; fork at the tail instead.", "error")
      }
      count = index + 1
    } else {
      count = this.#messages.length
      chars = this.#text.length
    }
    const res = await this.#net.traced("writer")(streamUrl(name), { method: "PUT", headers })
    if (res.status !== 201 && res.status !== 200) {
      const problem = await res.json().catch(() => ({}))
      return this.#note(`Fork refused (${res.status}): ${problem.detail ?? problem.title ?? "see the protocol panel"}`, "error")
    }
    // A new fork's tail is its fork point.
    const point = res.headers.get("stream-next-offset") ?? headers["Stream-Fork-Offset"]
    this.#el.forkForm.hidden = true
    await this.#registry.add({ name, contentType: info.contentType, forkOf: { name: source, offset: point, count, chars }, by: tabId })
    this.#note(`Forked ${source} into ${name}. Messages you append now go to the fork only.`)
    this.select(name)
  }
}

/** A stable hue for an author's avatar. */
function hue(name) {
  let n = 0
  for (const c of name) n = (n * 31 + c.charCodeAt(0)) % 360
  return String(Math.round(n / 45) % 8)
}
