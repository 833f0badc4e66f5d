// The package in headless Chromium (playwright-core driving the system
// Chromium): the official client against local.fetch in a page and in a
// dedicated Worker, and the Service Worker path, where two pages of one
// origin share the streams of one worker.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { launchChromium } from "./harness.mjs"
import { startStaticServer } from "./static-server.mjs"

let server
let chromium
let context
const problems = []

before(async () => {
  server = await startStaticServer()
  chromium = await launchChromium("wasm")
  context = chromium.context
})

after(async () => {
  await chromium?.close()
  await server?.close()
})

async function open(path) {
  const page = await context.newPage()
  page.on("pageerror", (e) => problems.push(`${path}: ${e.message}`))
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`${path}: console: ${m.text()}`)
  })
  await page.goto(`${server.origin}${path}`)
  return page
}

test("@durable-streams/client against local.fetch in a page", async () => {
  const page = await open("/client.html")
  const done = await page.evaluate(() => window.result)
  assert.equal(done.length, 7)
  assert.deepEqual(problems, [])
  await page.close()
})

test("@durable-streams/client against local.fetch in a dedicated Worker", async () => {
  const page = await open("/worker.html")
  const done = await page.evaluate(() => window.result)
  assert.equal(done.length, 7)
  assert.deepEqual(problems, [])
  await page.close()
})

test("service worker: an append in one page is seen live (SSE) in another", async () => {
  const writer = await open("/shared.html")
  await writer.evaluate(() => window.ready)
  const reader = await open("/shared.html")
  await reader.evaluate(() => window.ready)
  // Both pages are controlled by the same worker.
  for (const page of [writer, reader]) {
    assert.ok(await page.evaluate(() => navigator.serviceWorker.controller !== null))
  }
  assert.equal(await writer.evaluate(() => window.create()), 201)
  await reader.evaluate(() => window.follow())
  assert.equal(await writer.evaluate(() => window.append({ from: "writer", n: 1 })), 204)
  assert.equal(await writer.evaluate(() => window.append({ from: "writer", n: 2 })), 204)
  await reader.waitForFunction(
    () => window.seen.eventSource.length >= 2 && window.seen.client.length >= 2,
    null,
    { timeout: 10_000 },
  )
  const seen = await reader.evaluate(() => window.seen)
  const expected = [{ from: "writer", n: 1 }, { from: "writer", n: 2 }]
  assert.deepEqual(seen, { eventSource: expected, client: expected })
  assert.equal(await reader.evaluate(() => window.workerPending()), 2)
  // Closing the EventSource and cancelling the client's session release
  // both SSE bodies in the worker.
  await reader.evaluate(() => window.stop())
  let pending
  for (let i = 0; i < 100 && pending !== 0; i++) {
    pending = await reader.evaluate(() => window.workerPending())
    if (pending !== 0) await new Promise((r) => setTimeout(r, 50))
  }
  assert.equal(pending, 0)
  assert.deepEqual(problems, [])
  await writer.close()
  await reader.close()
})
