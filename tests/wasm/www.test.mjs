// The offline demo (www/dist, built by scripts/build-www.sh) in headless
// Chromium, served by the native server (`--www`) on loopback: two tabs
// share the streams of one Service Worker; a reader follows live, resumes
// after being closed (and after a reload) with nothing missed or repeated;
// a fork shares history then diverges; closing gives readers EOF; then the
// network is cut (context.setOffline, and the server is stopped), the tabs
// reload from the worker's cache and all of it works again. No console
// errors anywhere. A screenshot of each step goes to target/www-screenshots/.
//
// env: DS_SERVER_BIN (default target/release/durable-streams-server, else
// the debug build), CHROMIUM (default /usr/bin/chromium).
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { existsSync, mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { launchChromium, startNativeServer } from "./harness.mjs"

const root = fileURLToPath(new URL("../..", import.meta.url))
const dist = join(root, "www/dist")
const shots = join(root, "target/www-screenshots")
let server
let origin
let chromium
let context
let a // tab A: writes
let b // tab B: reads
let front // the tab in front
const problems = []

before(async () => {
  assert.ok(existsSync(join(dist, "index.html")), "build the demo first: scripts/build-www.sh")
  rmSync(shots, { recursive: true, force: true })
  mkdirSync(shots, { recursive: true })
  ;({ child: server, origin } = await startNativeServer(["--memory", "--www", dist], "demo: "))
  chromium = await launchChromium("www", { viewport: { width: 1440, height: 1000 } })
  context = chromium.context
})

after(async () => {
  await chromium?.close()
  if (server && server.exitCode === null) server.kill("SIGKILL")
})

async function openTab(name) {
  const page = await context.newPage()
  page.setDefaultTimeout(15_000)
  // Only one tab is in front; requestAnimationFrame (Playwright's default
  // polling) does not run in the others, so poll on a timer.
  const wait = page.waitForFunction.bind(page)
  page.waitForFunction = (fn, arg, options = {}) => wait(fn, arg, { polling: 100, ...options })
  // A user acts in the tab in front; Playwright's actionability checks also
  // need animation frames, which only the front tab gets.
  for (const action of ["click", "fill", "selectOption"]) {
    const act = page[action].bind(page)
    page[action] = async (...args) => {
      if (front !== page) {
        await page.bringToFront()
        front = page
      }
      return act(...args)
    }
  }
  page.on("pageerror", (e) => problems.push(`${name}: ${e.message}`))
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`${name}: console: ${m.text()}`)
  })
  await page.goto(`${origin}/`)
  front = page
  await ready(page)
  return page
}

async function ready(page) {
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 30_000 })
  assert.equal(await page.evaluate(() => document.body.dataset.ready), "true", "the demo started")
  assert.equal(await page.evaluate(() => window.demo.mode), "worker", "served by the Service Worker")
}

async function shot(page, name, fullPage = true) {
  await page.bringToFront()
  front = page
  await page.waitForTimeout(150) // let the last paint settle
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage })
}

function noProblems() {
  assert.deepEqual(problems, [], "no console errors or page errors")
}

// ---- page helpers -----------------------------------------------------------

async function createStream(page, name, type = "application/json") {
  await page.click('#writer button:has-text("New stream")')
  await page.fill('#writer input[name="name"]', name)
  await page.selectOption('#writer select[name="type"]', type)
  await page.click('#writer button:has-text("Create (PUT)")')
  await page.waitForFunction((n) => document.querySelector("#writer-stream").value === n, name)
  await page.waitForSelector("#writer .transcript .empty:not(:has-text('Reading'))")
}

async function selectWriter(page, name) {
  await page.selectOption("#writer-stream", name)
  await page.waitForFunction((n) => document.querySelector("#writer-stream").value === n, name)
}

async function send(page, text) {
  const before = await page.locator("#writer .transcript .msg").count()
  await page.fill('#writer input[name="text"]', text)
  await page.click('#writer button:has-text("Append")')
  await page.waitForFunction(() => document.querySelector('#writer input[name="text"]').value === "")
  // The writer's own transcript follows the stream live too.
  await page.waitForFunction((n) => document.querySelectorAll("#writer .transcript .msg").length > n, before)
}

async function addReader(page, name) {
  const before = await page.locator("[data-reader]").count()
  await page.selectOption("#reader-stream", name)
  await page.click('#readers button:has-text("Add reader")')
  await page.waitForFunction((n) => document.querySelectorAll("[data-reader]").length > n, before)
  const id = await page.locator("[data-reader]").last().getAttribute("data-reader")
  await waitStatus(page, id, "live")
  return id
}

async function waitStatus(page, id, status) {
  await page.waitForFunction(([r, s]) => document.querySelector(`[data-reader="${r}"]`)?.dataset.status === s, [id, status], {
    timeout: 15_000,
  })
}

/** The messages a reader shows: their texts, in order. */
function readerTexts(page, id) {
  return page.evaluate((r) => [...document.querySelectorAll(`[data-reader="${r}"] .r-msg`)].map((li) => li.lastChild.textContent.trim()), id)
}

async function waitReaderCount(page, id, n) {
  await page.waitForFunction(([r, k]) => document.querySelectorAll(`[data-reader="${r}"] .r-msg`).length >= k, [id, n], { timeout: 15_000 })
}

/** A stream's messages as the server has them (a catch-up read through the worker). */
function serverTexts(page, name) {
  return page.evaluate(async (n) => {
    const res = await fetch(`/v1/stream/local/${n}?offset=-1`)
    return (await res.json()).map((m) => m.text)
  }, name)
}

function readerButton(page, id, action) {
  return page.click(`[data-reader="${id}"] button[data-action="${action}"]`)
}

// ---- the scenario -----------------------------------------------------------

test("the demo loads from the native server and its worker serves the streams", async () => {
  a = await openTab("tab A")
  assert.ok(await a.evaluate(() => navigator.serviceWorker.controller !== null))
  // The first tab on an empty server seeds two streams.
  await a.waitForSelector('#inspector details[data-stream="lobby"] .json-list')
  await a.waitForSelector('#inspector details[data-stream="answer"] .hex')
  const hex = await a.textContent('#inspector details[data-stream="answer"] .hex')
  assert.match(hex, /^000000 {2}50 69 63 6b/, "bytes are shown in hex")
  await shot(a, "01-loaded")
  noProblems()
})

test("write in one tab, see it live in a second tab", async () => {
  b = await openTab("tab B")
  await createStream(a, "talk")
  // Tab B learns of the new stream through the registry stream.
  await b.waitForSelector('#reader-stream option[value="talk"]', { state: "attached" })
  const r1 = await addReader(b, "talk")
  assert.equal(r1, "r1")
  await send(a, "one")
  await send(a, "two")
  await waitReaderCount(b, "r1", 2)
  assert.deepEqual(await readerTexts(b, "r1"), ["one", "two"])
  await shot(a, "02-writer")
  await shot(b, "02-reader-live")
  noProblems()
})

test("a closed and reopened reader resumes without gaps or repeats", async () => {
  await readerButton(b, "r1", "close")
  await waitStatus(b, "r1", "closed")
  for (const text of ["three", "four", "five"]) await send(a, text)
  await b.waitForTimeout(300)
  assert.deepEqual(await readerTexts(b, "r1"), ["one", "two"], "a closed reader receives nothing")
  await readerButton(b, "r1", "reopen")
  await waitStatus(b, "r1", "live")
  await waitReaderCount(b, "r1", 5)
  const all = ["one", "two", "three", "four", "five"]
  assert.deepEqual(await serverTexts(b, "talk"), all)
  assert.deepEqual(await readerTexts(b, "r1"), all, "resumed: nothing missed, nothing repeated")
  assert.equal(await b.locator('[data-reader="r1"] .r-mark.resume').count(), 1)
  await shot(b, "03a-reader-resumed")

  // A reload resumes too: the offset and the shown messages are in localStorage.
  await b.reload()
  await ready(b)
  await waitStatus(b, "r1", "live")
  await send(a, "six")
  await waitReaderCount(b, "r1", 6)
  assert.deepEqual(await readerTexts(b, "r1"), [...all, "six"], "after a reload: nothing missed, nothing repeated")
  await shot(b, "03b-reader-after-reload")
  noProblems()
})

test("fork after a message: the fork shows the shared history, then its own", async () => {
  await a.click('#writer .msg[data-index="1"] .fork-here')
  await a.waitForSelector("#writer .fork-form:not([hidden])")
  assert.equal(await a.inputValue('#writer input[name="fork"]'), "talk-fork")
  await a.click('#writer .fork-form button[type="submit"]')
  await a.waitForFunction(() => document.querySelector("#writer-stream").value === "talk-fork")
  await a.waitForSelector("#writer .fork-divider")
  await send(a, "only in the fork")
  assert.deepEqual(await serverTexts(a, "talk-fork"), ["one", "two", "only in the fork"])
  assert.deepEqual(await serverTexts(a, "talk"), ["one", "two", "three", "four", "five", "six"], "the source is unchanged")
  assert.equal(await a.locator("#writer .msg.inherited").count(), 2, "two messages are shared history")
  // A reader of the fork in the other tab sees the same.
  const r2 = await addReader(b, "talk-fork")
  await waitReaderCount(b, r2, 3)
  assert.deepEqual(await readerTexts(b, r2), ["one", "two", "only in the fork"])
  await shot(a, "04-fork")
  noProblems()
})

test("closing a stream: readers see EOF", async () => {
  await selectWriter(a, "talk")
  await a.waitForFunction(() => document.querySelectorAll("#writer .transcript .msg").length === 6)
  await a.click('#writer button:has-text("Close stream")')
  await waitStatus(b, "r1", "eof")
  assert.equal(await b.locator('[data-reader="r1"] .r-mark.eof').count(), 1)
  await a.waitForSelector("#writer .divider.eof")
  assert.ok(await a.isDisabled('#writer button:has-text("Append")'), "no appends to a closed stream")
  await a.waitForSelector('#inspector details[data-stream="talk"] .pill[data-status="eof"]')
  // A closed stream can still be forked.
  assert.ok(await a.isEnabled('#writer button:has-text("Fork at tail")'))
  await shot(a, "05a-closed-writer")
  await shot(b, "05b-reader-eof")
  noProblems()
})

test("offline: with the network cut and the server gone, a reload still works", async () => {
  await context.setOffline(true)
  server.kill("SIGKILL")
  await new Promise((resolve) => (server.exitCode !== null ? resolve() : server.once("exit", resolve)))
  for (const page of [a, b]) {
    await page.reload()
    await ready(page)
  }
  assert.equal(await a.evaluate(() => navigator.onLine), false)
  assert.equal(await a.textContent("#net-status"), "network: offline")
  // Everything from before the reload is still there.
  assert.deepEqual(await serverTexts(b, "talk"), ["one", "two", "three", "four", "five", "six"])
  await waitStatus(b, "r1", "eof")
  assert.deepEqual(await readerTexts(b, "r1"), ["one", "two", "three", "four", "five", "six"])
  await shot(b, "06a-offline-reloaded")

  // Live across tabs, offline.
  await createStream(a, "offline-chat")
  await b.waitForSelector('#reader-stream option[value="offline-chat"]', { state: "attached" })
  const r = await addReader(b, "offline-chat")
  await send(a, "alpha")
  await send(a, "beta")
  await waitReaderCount(b, r, 2)
  // Resume, offline.
  await readerButton(b, r, "close")
  await waitStatus(b, r, "closed")
  await send(a, "gamma")
  await send(a, "delta")
  await readerButton(b, r, "reopen")
  await waitReaderCount(b, r, 4)
  assert.deepEqual(await readerTexts(b, r), ["alpha", "beta", "gamma", "delta"])
  await b.reload()
  await ready(b)
  await waitStatus(b, r, "live")
  await send(a, "epsilon")
  await waitReaderCount(b, r, 5)
  assert.deepEqual(await readerTexts(b, r), ["alpha", "beta", "gamma", "delta", "epsilon"])
  // Fork, offline.
  await a.click('#writer .msg[data-index="0"] .fork-here')
  await a.fill('#writer input[name="fork"]', "offline-branch")
  await a.click('#writer .fork-form button[type="submit"]')
  await a.waitForFunction(() => document.querySelector("#writer-stream").value === "offline-branch")
  await send(a, "branch only")
  assert.deepEqual(await serverTexts(a, "offline-branch"), ["alpha", "branch only"])
  await shot(a, "06b-offline-fork")
  // Close, offline: the reader sees EOF.
  await selectWriter(a, "offline-chat")
  await a.waitForFunction(() => document.querySelectorAll("#writer .transcript .msg").length === 5)
  await a.click('#writer button:has-text("Close stream")')
  await waitStatus(b, r, "eof")
  await shot(b, "06c-offline-eof")
  noProblems()
})

test("phone width: one column, nothing overflows", async () => {
  await b.setViewportSize({ width: 390, height: 844 })
  await b.evaluate(() => window.scrollTo(0, 0))
  await b.waitForTimeout(200)
  const overflow = await b.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`)
  await shot(b, "07-phone", false)
  await b.locator("#readers").scrollIntoViewIfNeeded()
  await shot(b, "07-phone-readers", false)
  noProblems()
})
