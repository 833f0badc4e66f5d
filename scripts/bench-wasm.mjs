// In-process numbers of the wasm host (issue 8): DurableStreams.fetch called
// directly from Node, no HTTP. Run by scripts/bench.sh when host-wasm/pkg
// has been built (scripts/build-wasm.sh).
//
//   node scripts/bench-wasm.mjs [--seconds 5] [--catchup-mib 64] [--out FILE]
//                               [--scenarios append-many,append-c1,json-append,catchup-read]
//
// Every scenario reads back what it wrote and compares it with what was
// acknowledged.
import { writeFileSync } from "node:fs"

const { DurableStreams } = await import(new URL("../host-wasm/pkg/node.js", import.meta.url))

const opt = { seconds: 5, "catchup-mib": 64, out: "", scenarios: "", writers: 32 }
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, "")
  if (!(key in opt)) throw new Error(`unknown option ${process.argv[i]}`)
  opt[key] = typeof opt[key] === "number" ? Number(process.argv[i + 1]) : process.argv[i + 1]
}
const wanted = (s) => !opt.scenarios || opt.scenarios.split(",").includes(s)

const B = "http://local/v1/stream/"
const local = await DurableStreams.open({})
const f = local.fetch

function record(writer, seq, size) {
  const head = `w${String(writer).padStart(4, "0")}s${String(seq).padStart(10, "0")}|`
  const bytes = new Uint8Array(size)
  bytes.fill(97 + ((writer * 7 + seq) % 26))
  for (let i = 0; i < head.length; i++) bytes[i] = head.charCodeAt(i)
  return bytes
}

async function create(path, type) {
  const r = await f(new Request(B + path, { method: "PUT", headers: { "content-type": type } }))
  if (r.status !== 201) throw new Error(`PUT ${path}: ${r.status}`)
}

async function readAll(path) {
  let offset = "-1"
  const parts = []
  let trips = 0
  for (;;) {
    const r = await f(new Request(`${B}${path}?offset=${offset}`))
    trips++
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status}`)
    parts.push(new Uint8Array(await r.arrayBuffer()))
    const next = r.headers.get("stream-next-offset")
    if (r.headers.get("stream-up-to-date") === "true") break
    offset = next
  }
  return { parts, trips }
}

function pct(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))] : NaN
}

async function appendLoad(name, writers, shared, kind, size) {
  const type = kind === "json" ? "application/json" : "application/octet-stream"
  const paths = []
  for (let w = 0; w < (shared ? 1 : writers); w++) {
    paths.push(`${name}-${w}`)
    await create(paths[w], type)
  }
  const lat = []
  const acked = new Array(writers).fill(0)
  const end = performance.now() + opt.seconds * 1000
  const start = performance.now()
  const errors = []
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const path = paths[shared ? 0 : w]
      while (performance.now() < end) {
        const seq = acked[w]
        const body =
          kind === "json"
            ? JSON.stringify({ w, seq, text: "x".repeat(Math.max(1, size - 40)) })
            : record(w, seq, size)
        const t = performance.now()
        const r = await f(new Request(B + path, { method: "POST", headers: { "content-type": type }, body }))
        if (r.status === 204 || r.status === 200) {
          lat.push(performance.now() - t)
          acked[w]++
        } else errors.push(`POST ${path}: ${r.status}`)
      }
    }),
  )
  const secs = (performance.now() - start) / 1000
  const total = acked.reduce((a, b) => a + b, 0)
  // Verify.
  for (let w = 0; w < paths.length; w++) {
    const { parts } = await readAll(paths[w])
    if (kind === "json") {
      const msgs = parts.filter((p) => p.length).flatMap((p) => JSON.parse(new TextDecoder().decode(p)))
      const want = shared ? total : acked[w]
      if (msgs.length !== want) errors.push(`${paths[w]}: ${msgs.length} messages, ${want} acknowledged`)
      msgs.forEach((m, i) => { if (!shared && m.seq !== i) errors.push(`${paths[w]}: message ${i} has seq ${m.seq}`) })
    } else {
      const len = parts.reduce((a, p) => a + p.length, 0)
      const want = (shared ? total : acked[w]) * size
      if (len !== want) errors.push(`${paths[w]}: ${len} bytes, ${want} acknowledged`)
    }
  }
  lat.sort((a, b) => a - b)
  return { appends_per_s: total / secs, p50_ms: pct(lat, 50), p99_ms: pct(lat, 99), appends: total, errors: errors.slice(0, 5), error_count: errors.length }
}

async function catchup() {
  const size = 1024
  const total = Math.ceil((opt["catchup-mib"] * 1048576) / size)
  await create("catchup", "application/octet-stream")
  const t0 = performance.now()
  for (let seq = 0; seq < total; seq++) {
    const r = await f(new Request(B + "catchup", { method: "POST", headers: { "content-type": "application/octet-stream" }, body: record(0, seq, size) }))
    if (r.status !== 204 && r.status !== 200) throw new Error(`POST: ${r.status}`)
  }
  const build = total / ((performance.now() - t0) / 1000)
  const rates = []
  let trips = 0
  const errors = []
  for (let i = 0; i < 3; i++) {
    const t = performance.now()
    const got = await readAll("catchup")
    const secs = (performance.now() - t) / 1000
    trips = got.trips
    const len = got.parts.reduce((a, p) => a + p.length, 0)
    rates.push(len / 1048576 / secs)
    if (len !== total * size) errors.push(`read ${len} bytes, acknowledged ${total * size}`)
    // Byte-exact check of every record.
    const all = new Uint8Array(len)
    let o = 0
    for (const p of got.parts) { all.set(p, o); o += p.length }
    for (let seq = 0; seq < total && errors.length < 5; seq++) {
      const want = record(0, seq, size)
      const have = all.subarray(seq * size, seq * size + size)
      if (have.length !== size || have.some((b, j) => b !== want[j])) errors.push(`record ${seq} differs`)
    }
  }
  rates.sort((a, b) => a - b)
  return { mib_per_s: rates[1] ?? rates[0], round_trips: trips, build_appends_per_s: build, errors, error_count: errors.length }
}

const results = {}
const show = (name, r) => {
  results[name] = r
  const fmt = (v) => (Number.isInteger(v) ? String(v) : Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v.toFixed(3)) : "–")
  console.log(`  ${name.padEnd(16)} wasm-node  ${Object.entries(r).filter(([k]) => !["errors"].includes(k)).map(([k, v]) => `${k} ${typeof v === "number" ? fmt(v) : v}`).join("  ")}${r.error_count ? "  ERRORS: " + r.errors.join(" | ") : ""}`)
}
if (wanted("append-many")) show("append-many", await appendLoad("am", opt.writers, false, "bytes", 128))
if (wanted("append-hot")) show("append-hot", await appendLoad("ah", opt.writers, true, "bytes", 128))
if (wanted("json-append")) show("json-append", await appendLoad("ja", opt.writers, false, "json", 200))
if (wanted("append-c1")) show("append-c1", await appendLoad("c1", 1, false, "bytes", 128))
if (wanted("catchup-read")) show("catchup-read", await catchup())
await local.close?.()
if (opt.out) writeFileSync(opt.out, JSON.stringify({ tool: "bench-wasm", node: process.version, options: opt, results }, null, 2))
const failed = Object.values(results).some((r) => r.error_count > 0)
process.exit(failed ? 1 : 0)
