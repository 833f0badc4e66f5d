// Boots the demo: connects to the local Durable Streams server (the Service
// Worker of this origin, or, where service workers are unavailable, one in
// this tab), opens the registry, and builds the four panels.

import { registerLocalStreams } from "durable-streams-local/service-worker"
import { DurableStream } from "@durable-streams/client"
import { h, replace, randomId } from "./dom.js"
import { Net, streamUrl } from "./net.js"
import { Registry } from "./registry.js"
import { adoptInstance, ends, tabId } from "./store.js"
import { Writer } from "./writer.js"
import { Readers } from "./readers.js"
import { Inspector } from "./inspector.js"
import { ProtocolLog } from "./log.js"

const $ = (selector) => document.querySelector(selector)

/** Resolves with { mode, fetch, note } once a local server answers. */
async function connect() {
  const why = !isSecureContext
    ? "service workers need a secure context (https, or http://localhost and 127.0.0.1)"
    : !("serviceWorker" in navigator)
      ? "this browser has no service workers"
      : undefined
  if (!why) {
    try {
      const container = navigator.serviceWorker
      const registered = registerLocalStreams(new URL("../sw.js", import.meta.url))
      // A page loaded with a hard reload is not controlled; ask the worker
      // to claim it.
      container.ready.then((registration) => {
        if (!container.controller) registration.active?.postMessage({ type: "claim" })
      })
      await registered
      return { mode: "worker", fetch: (input, init) => fetch(input, init) }
    } catch (error) {
      return inPage(`the service worker could not start (${error.message})`)
    }
  }
  return inPage(why)
}

async function inPage(why) {
  const { DurableStreams } = await import("durable-streams-local")
  const local = await DurableStreams.open({ longPollTimeoutMs: 20_000 })
  return { mode: "page", fetch: local.fetch, note: why }
}

/** Keeps the worker (and so its streams) alive while this tab is open. */
function keepAlive(status) {
  const container = navigator.serviceWorker
  container.addEventListener("message", (event) => {
    if (event.data?.type === "pong") {
      const n = event.data.pending
      status.textContent = `${n} live read${n === 1 ? "" : "s"}`
      status.title = "Long-polls and SSE responses the worker's server is holding open, for all tabs"
    }
  })
  const ping = () => container.controller?.postMessage({ type: "ping" })
  ping()
  setInterval(ping, 5_000)
}

function networkChip() {
  const chip = $("#net-status")
  const paint = () => {
    chip.dataset.state = navigator.onLine ? "online" : "offline"
    chip.textContent = navigator.onLine ? "network: online" : "network: offline"
  }
  addEventListener("online", paint)
  addEventListener("offline", paint)
  paint()
}

/** First tab on a fresh local server: a chat and a token stream to start from. */
async function seed(net, registry) {
  const fetch = net.traced("writer")
  const lobby = new DurableStream({ url: streamUrl("lobby"), contentType: "application/json", fetch, batching: false, warnOnHttp: false })
  await lobby.create({ contentType: "application/json" })
  let next
  const capture = async (input, init) => {
    const res = await fetch(input, init)
    next = res.headers.get("stream-next-offset")
    return res
  }
  const writer = new DurableStream({ url: streamUrl("lobby"), contentType: "application/json", fetch: capture, batching: false, warnOnHttp: false })
  const hello = [
    ["ada", "Welcome! This chat is a Durable Stream served by a Service Worker inside your browser."],
    ["grace", "Open this page in a second tab and add a reader there: messages arrive live over SSE."],
    ["ada", "Close a reader, send a few messages, reopen it: it resumes from its saved offset."],
  ]
  for (const [from, text] of hello) {
    const message = { id: randomId(8), from, text, at: Date.now() }
    await writer.append(JSON.stringify(message))
    ends.learn(message.id, next)
  }
  await registry.add({ name: "lobby", contentType: "application/json", by: tabId })
  const answer = new DurableStream({ url: streamUrl("answer"), contentType: "text/plain", fetch, warnOnHttp: false })
  await answer.create({ contentType: "text/plain", body: "Pick “answer” in the writer and press “Stream a reply”.\n\n" })
  await registry.add({ name: "answer", contentType: "text/plain", by: tabId })
}

async function main() {
  networkChip()
  const server = await connect()
  const mode = $("#mode-status")
  if (server.mode === "worker") {
    mode.textContent = "server: Service Worker"
    mode.dataset.state = "online"
    const live = h("span.chip-sub")
    mode.append(" · ", live)
    keepAlive(live)
  } else {
    mode.textContent = "server: this tab only"
    mode.dataset.state = "warn"
    const banner = $("#banner")
    banner.hidden = false
    banner.textContent = `Running the local server inside this tab, because ${server.note}. Everything works, but each tab has its own streams, and they last until the tab is closed or reloaded.`
  }
  const net = new Net(server.fetch)
  // The protocol panel records from the very first request.
  const log = new ProtocolLog({ net })
  const registry = new Registry(net)
  await registry.start()
  let leaving = false
  addEventListener("pagehide", () => (leaving = true))
  registry.addEventListener("lost", () => {
    if (leaving) return
    const banner = $("#banner")
    banner.hidden = false
    banner.dataset.kind = "error"
    replace(
      banner,
      "The local server stopped (the browser restarted its Service Worker, or a new version of this page took over), and its streams went with it. ",
      h("button.small", { type: "button", onclick: () => location.reload() }, "Reload"),
    )
  })
  if (adoptInstance(registry.instance) && server.mode === "worker") {
    const banner = $("#banner")
    banner.hidden = false
    banner.textContent =
      "The local server was restarted (the browser stops idle service workers, and a restarted one starts with no streams), so this page forgot its saved readers."
  }
  if (registry.fresh) await seed(net, registry)
  const writer = new Writer({ net, registry })
  const readers = new Readers({ net, registry })
  const inspector = new Inspector({ net, registry })
  replace($("#writer-slot"), writer.element)
  replace($("#readers-slot"), readers.element)
  replace($("#inspector-slot"), inspector.element)
  replace($("#protocol-slot"), log.element)
  $("#tab-id").textContent = `tab ${tabId}`
  document.body.dataset.ready = "true"
  window.demo = { net, registry, writer, readers, inspector, mode: server.mode }
}

main().catch((error) => {
  const banner = $("#banner")
  banner.hidden = false
  banner.dataset.kind = "error"
  banner.textContent = `The demo could not start: ${error?.message ?? error}`
  document.body.dataset.ready = "failed"
})
