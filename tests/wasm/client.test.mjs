// The official client against `local.fetch` in Node, through the package's
// Node entry (host-wasm/pkg, built by scripts/build-wasm.sh).
import { test } from "node:test"
import assert from "node:assert/strict"
import * as client from "@durable-streams/client"
import { DurableStreams } from "../../host-wasm/pkg/node.js"
import { runClientScenarios } from "./client-scenarios.mjs"

test("@durable-streams/client against local.fetch in Node", async () => {
  const done = await runClientScenarios({ DurableStreams, client })
  assert.equal(done.length, 7)
})

test("fetch accepts what globalThis.fetch accepts and serves any origin", async () => {
  const local = await DurableStreams.open()
  const put = await local.fetch(new Request("http://a.example/v1/stream/x", { method: "PUT" }))
  assert.equal(put.status, 201)
  const post = await local.fetch(new URL("https://b.example/v1/stream/x"), {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: "hi",
  })
  assert.equal(post.status, 204)
  const read = await local.fetch("http://c.example/v1/stream/x?offset=-1")
  assert.equal(await read.text(), "hi")
  assert.equal((await local.fetch("http://a.example/elsewhere")).status, 404)
  local.close()
  await assert.rejects(local.fetch("http://a.example/v1/stream/x"), TypeError)
})

test("bodies over maxBodyBytes get 413", async () => {
  const local = await DurableStreams.open({ maxBodyBytes: 8 })
  await local.fetch("http://l/v1/stream/b", { method: "PUT" })
  const res = await local.fetch("http://l/v1/stream/b", {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: new Uint8Array(9),
  })
  assert.equal(res.status, 413)
  local.close()
})

test("an aborted long-poll rejects and frees its waiter", async () => {
  const local = await DurableStreams.open({ longPollTimeoutMs: 60_000 })
  const put = await local.fetch("http://l/v1/stream/a", { method: "PUT" })
  const tail = put.headers.get("stream-next-offset")
  const abort = new AbortController()
  const poll = local.fetch(`http://l/v1/stream/a?offset=${tail}&live=long-poll`, { signal: abort.signal })
  await new Promise((r) => setTimeout(r, 10))
  assert.equal(local.pending, 1)
  abort.abort()
  await assert.rejects(poll, { name: "AbortError" })
  assert.equal(local.pending, 0)
  local.close()
})

test("a cancelled SSE body frees its session", async () => {
  const local = await DurableStreams.open()
  await local.fetch("http://l/v1/stream/s", { method: "PUT", headers: { "content-type": "text/plain" } })
  const res = await local.fetch("http://l/v1/stream/s?offset=-1&live=sse")
  assert.equal(res.headers.get("content-type"), "text/event-stream")
  const reader = res.body.getReader()
  assert.match(new TextDecoder().decode((await reader.read()).value), /upToDate/)
  assert.equal(local.pending, 1)
  await reader.cancel()
  assert.equal(local.pending, 0)
  local.close()
})

test("webhook subscriptions are signed, sent with webhookFetch, and auto-acked on done", async () => {
  const sent = []
  const webhookFetch = async (url, init) => {
    sent.push({ url, headers: init.headers, body: JSON.parse(new TextDecoder().decode(init.body)) })
    return new Response(JSON.stringify({ done: true }), { headers: { "content-type": "application/json" } })
  }
  const local = await DurableStreams.open({ webhookFetch })
  const base = "http://l/v1/stream"
  await local.fetch(`${base}/events/a`, { method: "PUT" })
  const sub = await local.fetch(`${base}/__ds/subscriptions/s1`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ type: "webhook", pattern: "events/*", webhook: { url: "https://worker.example/hook" } }),
  })
  assert.equal(sub.status, 201)
  await local.fetch(`${base}/events/a`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: "x" })
  for (let i = 0; i < 100 && sent.length === 0; i++) await new Promise((r) => setTimeout(r, 5))
  assert.equal(sent.length, 1)
  assert.equal(sent[0].url, "https://worker.example/hook")
  assert.match(sent[0].headers.get("webhook-signature"), /ed25519=/)
  assert.equal(sent[0].body.subscription_id, "s1")
  assert.deepEqual(sent[0].body.streams.map((s) => s.path), ["events/a"])
  // {"done":true} acked the snapshot's tail.
  const tail = sent[0].body.streams[0].tail_offset
  for (let i = 0; i < 100; i++) {
    const state = await (await local.fetch(`${base}/__ds/subscriptions/s1`)).json()
    if (state.streams[0].acked_offset === tail) break
    await new Promise((r) => setTimeout(r, 5))
  }
  const state = await (await local.fetch(`${base}/__ds/subscriptions/s1`)).json()
  assert.equal(state.streams[0].acked_offset, tail)
  local.close()
})

test("an injected clock drives long-poll timeouts and expiry", async () => {
  let now = Date.UTC(2026, 0, 1)
  const local = await DurableStreams.open({ longPollTimeoutMs: 60_000, now: () => now })
  const put = await local.fetch("http://l/v1/stream/t", { method: "PUT", headers: { "stream-ttl": "120" } })
  const tail = put.headers.get("stream-next-offset")
  const poll = local.fetch(`http://l/v1/stream/t?offset=${tail}&live=long-poll`)
  await new Promise((r) => setTimeout(r, 10))
  now += 60_000
  local.tick()
  assert.equal((await poll).status, 204)
  now += 200_000 // past the (sliding) TTL
  local.tick()
  assert.equal((await local.fetch("http://l/v1/stream/t", { method: "HEAD" })).status, 404)
  local.close()
})
