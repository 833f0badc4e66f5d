// Serves the wasm host over HTTP with Node's http module, so the official
// conformance suite (which speaks HTTP) can test it: each request becomes a
// fetch Request for `local.fetch`, and the Response is streamed back,
// SSE bodies included. Closing the connection aborts the request.
//
// usage: node serve-node.mjs [--port N] [--long-poll-timeout-ms N]
//          [--allow-local-webhooks] [--pkg DIR]
// Prints "listening on http://127.0.0.1:PORT" once ready.
import http from "node:http"
import { Readable } from "node:stream"
import { parseArgs } from "node:util"
import { pathToFileURL } from "node:url"
import { resolve } from "node:path"

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "long-poll-timeout-ms": { type: "string", default: "500" },
    "allow-local-webhooks": { type: "boolean", default: false },
    pkg: { type: "string", default: new URL("../../host-wasm/pkg", import.meta.url).pathname },
  },
})
const { DurableStreams } = await import(pathToFileURL(resolve(values.pkg, "node.js")).href)
const local = await DurableStreams.open({
  longPollTimeoutMs: Number(values["long-poll-timeout-ms"]),
  allowLocalWebhooks: values["allow-local-webhooks"],
})

const server = http.createServer(async (req, res) => {
  const abort = new AbortController()
  res.on("close", () => {
    if (!res.writableFinished) abort.abort()
  })
  try {
    const headers = new Headers()
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1])
    const hasBody = req.method !== "GET" && req.method !== "HEAD"
    const request = new Request(`http://${req.headers.host ?? "localhost"}${req.url}`, {
      method: req.method,
      headers,
      body: hasBody ? Readable.toWeb(req) : undefined,
      duplex: "half",
      signal: abort.signal,
    })
    const response = await local.fetch(request)
    const out = {}
    for (const [name, value] of response.headers) out[name] = value
    if (response.headers.get("content-type") !== "text/event-stream") {
      // A complete body: send it with its length, as a server would.
      const body = Buffer.from(await response.arrayBuffer())
      if (req.method !== "HEAD" && response.status !== 204 && response.status !== 304) {
        out["content-length"] = String(body.length)
      }
      res.writeHead(response.status, out)
      return res.end(body)
    }
    res.writeHead(response.status, out)
    res.flushHeaders()
    for await (const chunk of response.body) res.write(chunk)
    res.end()
  } catch (error) {
    if (abort.signal.aborted) return
    if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" })
    res.end(String(error?.stack ?? error))
  }
})
server.listen(Number(values.port), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`)
})
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    local.close()
    server.close()
    server.closeAllConnections()
  })
}
