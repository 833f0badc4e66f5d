// The official @durable-streams/client in headless Chromium, on a page of one
// origin, against the native server on another: every request is a
// cross-origin fetch (preflighted where CORS says so), so the client works
// only if the server answers preflights, browser writes (which carry
// `Origin`) and reads with the CORS headers and exposes the protocol's
// headers. The same scenarios as client.test.mjs and browser.test.mjs.
//
// env: DS_SERVER_BIN (default target/release/durable-streams-server, else
// the debug build), CHROMIUM (default /usr/bin/chromium).
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { launchChromium, startNativeServer } from "./harness.mjs"
import { startStaticServer } from "./static-server.mjs"

let native
let pages
let chromium
const problems = []

before(async () => {
  native = await startNativeServer(["--memory", "--www", ""])
  pages = await startStaticServer()
  assert.notEqual(pages.origin, native.origin)
  chromium = await launchChromium("cors")
})

after(async () => {
  await chromium?.close()
  await pages?.close()
  if (native && native.child.exitCode === null) native.child.kill("SIGKILL")
})

test("@durable-streams/client from another origin against the native server", async () => {
  const page = await chromium.context.newPage()
  page.on("pageerror", (e) => problems.push(e.message))
  page.on("console", (m) => {
    // The closed-stream scenario's refused append (409) is expected; Chromium
    // logs every 4xx of a network fetch as a console error.
    if (m.type() === "error" && !/status of 409/.test(m.text())) problems.push(`console: ${m.text()}`)
  })
  const server = `${native.origin}/v1/stream/cors`
  await page.goto(`${pages.origin}/native.html?server=${encodeURIComponent(server)}`)
  const done = await page.evaluate(() => window.result)
  assert.equal(done.length, 6, `scenarios run: ${done}`)

  // A plain browser append: its answer's protocol headers are readable.
  const seen = await page.evaluate(async (url) => {
    await fetch(url, { method: "PUT", headers: { "content-type": "text/plain" } })
    const res = await fetch(url, { method: "POST", headers: { "content-type": "text/plain" }, body: "hi" })
    return { status: res.status, offset: res.headers.get("stream-next-offset") }
  }, `${server}/plain`)
  assert.equal(seen.status, 204)
  assert.match(seen.offset ?? "", /_0+2$/)
  assert.deepEqual(problems, [])
  await page.close()
})
