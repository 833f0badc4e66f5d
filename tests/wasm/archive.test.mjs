// Archives move between the native server and the wasm host in both
// directions (issue "Operating": the same format readable by the wasm host).
// Needs the release server binary (DS_SERVER_BIN) and host-wasm/pkg.
import { test } from "node:test"
import assert from "node:assert/strict"
import { execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createServer } from "node:net"
import { DurableStreams } from "../../host-wasm/pkg/node.js"

const bin = process.env.DS_SERVER_BIN ?? new URL("../../target/release/durable-streams-server", import.meta.url).pathname

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

async function withServer(dataDir, fn) {
  const port = await freePort()
  const child = spawn(bin, ["--bind", `127.0.0.1:${port}`, "--data-dir", dataDir], { stdio: "ignore" })
  const base = `http://127.0.0.1:${port}/v1/stream`
  try {
    for (let i = 0; ; i++) {
      try {
        await fetch(`${base}/__probe`, { method: "HEAD" })
        break
      } catch (e) {
        if (i > 200) throw e
        await new Promise((r) => setTimeout(r, 25))
      }
    }
    return await fn(base)
  } finally {
    child.kill("SIGTERM")
    await new Promise((r) => child.once("exit", r))
  }
}

async function readAll(fetchFn, url) {
  const res = await fetchFn(`${url}?offset=-1`)
  assert.equal(res.status, 200)
  return { body: await res.text(), closed: res.headers.get("stream-closed") === "true", type: res.headers.get("content-type") }
}

test("native export → wasm import → wasm export → native import round-trips", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ds-archive-"))
  try {
    const first = join(dir, "first")
    // 1. Streams on the native server: JSON, bytes, closed, a fork, TTL, a producer.
    await withServer(first, async (base) => {
      const put = (p, headers, body) => fetch(`${base}/${p}`, { method: "PUT", headers, body })
      const post = (p, headers, body) => fetch(`${base}/${p}`, { method: "POST", headers, body })
      assert.equal((await put("app/chat", { "content-type": "application/json" }, '[{"m":1},{"m":2}]')).status, 201)
      assert.equal((await put("app/log", { "content-type": "text/plain", "stream-ttl": "3600" }, "line one\n")).status, 201)
      const p = await post("app/log", { "content-type": "text/plain", "producer-id": "p1", "producer-epoch": "0", "producer-seq": "0" }, "line two\n")
      assert.equal(p.status, 200)
      assert.equal((await put("app/done", { "content-type": "text/plain", "stream-closed": "true" }, "final")).status, 201)
      assert.equal((await put("app/fork", { "stream-forked-from": "/v1/stream/app/log" })).status, 201)
      assert.equal((await post("app/fork", { "content-type": "text/plain" }, "fork only\n")).status, 204)
    })
    const nativeArchive = join(dir, "native.dsa")
    execFileSync(bin, ["export", "--data-dir", first, "--output", nativeArchive, "--quiet"])

    // 2. Into the wasm host.
    const local = await DurableStreams.open()
    const summary = local.importArchive(readFileSync(nativeArchive))
    assert.deepEqual([...summary.imported].sort(), ["app/chat", "app/done", "app/fork", "app/log"])
    const at = (p) => `http://local/v1/stream/${p}`
    assert.deepEqual(JSON.parse((await readAll(local.fetch, at("app/chat"))).body), [{ m: 1 }, { m: 2 }])
    assert.equal((await readAll(local.fetch, at("app/log"))).body, "line one\nline two\n")
    assert.equal((await readAll(local.fetch, at("app/fork"))).body, "line one\nline two\nfork only\n")
    assert.deepEqual(await readAll(local.fetch, at("app/done")), { body: "final", closed: true, type: "text/plain" })
    const head = await local.fetch(at("app/log"), { method: "HEAD" })
    assert.equal(head.headers.get("stream-ttl"), "3600")
    // Producer state came along: the same request is a duplicate.
    const dup = await local.fetch(at("app/log"), {
      method: "POST",
      headers: { "content-type": "text/plain", "producer-id": "p1", "producer-epoch": "0", "producer-seq": "0" },
      body: "line two\n",
    })
    assert.equal(dup.status, 204)
    // Conflict modes.
    assert.throws(() => local.importArchive(readFileSync(nativeArchive), { onConflict: "fail" }))
    assert.equal(local.importArchive(readFileSync(nativeArchive)).skipped.length, 4)

    // 3. Out of the wasm host, back into a fresh native data directory.
    await local.fetch(at("app/chat"), { method: "POST", headers: { "content-type": "application/json" }, body: '{"m":3}' })
    const wasmArchive = join(dir, "wasm.dsa")
    writeFileSync(wasmArchive, local.exportArchive({ prefix: "app/" }))
    local.close()
    const second = join(dir, "second")
    execFileSync(bin, ["import", "--data-dir", second, "--input", wasmArchive, "--on-conflict", "fail"], { stdio: "ignore" })
    await withServer(second, async (base) => {
      assert.deepEqual(JSON.parse((await readAll(fetch, `${base}/app/chat`)).body), [{ m: 1 }, { m: 2 }, { m: 3 }])
      assert.equal((await readAll(fetch, `${base}/app/fork`)).body, "line one\nline two\nfork only\n")
      assert.equal((await readAll(fetch, `${base}/app/done`)).closed, true)
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
