// The list of local streams. The protocol has no "list streams" request, so
// the page keeps its own list in a stream: /v1/stream/local/_registry, a JSON
// stream of events ({op: "created", ...}, {op: "deleted", ...}). Every tab
// follows it over SSE, so a stream created in one tab appears in all of them.
// Its first event names this run of the local server: a Service Worker the
// browser stopped and restarted starts with no streams, and a registry with a
// new instance id tells the page that its saved state is stale.

import { DurableStream, stream } from "@durable-streams/client"
import { streamUrl } from "./net.js"
import { randomId } from "./dom.js"

export const REGISTRY = "_registry"

export class Registry extends EventTarget {
  /** name → { name, contentType, forkOf?: { name, offset }, at, by } */
  streams = new Map()
  /** Id of this run of the local server (first event of the registry). */
  instance = undefined
  /** True when this tab created the registry (the local server was empty). */
  fresh = false
  #net
  #handle
  #session

  constructor(net) {
    super()
    this.#net = net
  }

  async start() {
    const url = streamUrl(REGISTRY)
    const fetch = this.#net.traced("registry")
    let status
    const capture = async (input, init) => {
      const res = await fetch(input, init)
      status = res.status
      return res
    }
    // Idempotent create: 201 for the first tab, 200 for every later one.
    await new DurableStream({ url, fetch: capture, warnOnHttp: false }).create({ contentType: "application/json" })
    this.fresh = status === 201
    this.#handle = new DurableStream({ url, contentType: "application/json", fetch, batching: false, warnOnHttp: false })
    if (this.fresh) {
      await this.#append({ op: "server", instance: randomId(8) })
    }
    let ready
    const known = new Promise((resolve) => (ready = resolve))
    this.#session = await stream({ url, offset: "-1", live: "sse", fetch, warnOnHttp: false })
    this.#session.subscribeJson((batch) => {
      for (const event of batch.items) this.#apply(event)
      this.dispatchEvent(new Event("change"))
      if (batch.upToDate && this.instance !== undefined) ready()
    })
    this.#session.closed.catch((error) => {
      this.dispatchEvent(new CustomEvent("lost", { detail: error }))
    })
    await known
  }

  #apply(event) {
    if (event.op === "server") this.instance ??= event.instance
    else if (event.op === "created") this.streams.set(event.name, event)
    else if (event.op === "deleted") this.streams.delete(event.name)
  }

  #append(event) {
    return this.#handle.append(JSON.stringify({ ...event, at: Date.now() }))
  }

  /** Records a stream this page created (or forked); resolves once listed. */
  async add(info) {
    const listed = this.listed(info.name)
    await this.#append({ op: "created", ...info })
    await listed
  }

  /** Resolves once stream `name` is listed (its event came back over SSE). */
  listed(name) {
    return new Promise((resolve) => {
      const check = () => {
        if (!this.streams.has(name)) return
        this.removeEventListener("change", check)
        resolve()
      }
      this.addEventListener("change", check)
      check()
    })
  }

  /** Records that a stream was deleted. */
  remove(name) {
    return this.#append({ op: "deleted", name })
  }

  /** A name based on `base` that no listed stream uses yet. */
  freeName(base) {
    if (!this.streams.has(base)) return base
    for (let n = 2; ; n++) if (!this.streams.has(`${base}-${n}`)) return `${base}-${n}`
  }
}
