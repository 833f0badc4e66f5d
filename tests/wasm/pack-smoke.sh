#!/usr/bin/env bash
# `npm pack` of the built package (host-wasm/pkg), installed into a fresh
# folder: it must import and serve by its package name in Node, expose the
# service-worker subpath, run its README example as written, and its
# TypeScript declarations must type-check a consumer that hands `local.fetch`
# to @durable-streams/client.
# usage: tests/wasm/pack-smoke.sh   (after scripts/build-wasm.sh and npm ci here)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pkg=$here/../../host-wasm/pkg
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tarball=$(cd "$pkg" && npm pack --silent --pack-destination "$tmp" | tail -n 1)
mkdir "$tmp/app"
cd "$tmp/app"
echo '{ "name": "smoke", "private": true, "type": "module" }' > package.json
npm install --no-audit --no-fund --silent "../$tarball"

cat > smoke.mjs <<'JS'
import { DurableStreams } from "durable-streams-local"
import { serveLocalStreams, registerLocalStreams } from "durable-streams-local/service-worker"

if (typeof serveLocalStreams !== "function" || typeof registerLocalStreams !== "function") {
  throw new Error("service-worker helpers missing")
}
const local = await DurableStreams.open({ longPollTimeoutMs: 1000 })
const url = "http://local/v1/stream/smoke"
const put = await local.fetch(url, { method: "PUT", headers: { "content-type": "text/plain" } })
const post = await local.fetch(url, { method: "POST", headers: { "content-type": "text/plain" }, body: "it works" })
const text = await (await local.fetch(`${url}?offset=-1`)).text()
if (put.status !== 201 || post.status !== 204 || text !== "it works") {
  throw new Error(`unexpected: ${put.status} ${post.status} ${text}`)
}
local.close()
console.log("npm pack smoke test: installed package serves streams")
JS
node smoke.mjs

# The README's first example runs as written.
node -e '
  const readme = require("fs").readFileSync("node_modules/durable-streams-local/README.md", "utf8")
  require("fs").writeFileSync("readme-example.mjs", readme.match(/```js\n([\s\S]*?)```/)[1])
'
node readme-example.mjs > readme-example.out
grep -q '"streamNextOffset"' readme-example.out || { cat readme-example.out; exit 1; }
echo "npm pack smoke test: README example runs"

# Type-check a consumer against the shipped declarations.
mkdir -p node_modules/@durable-streams
ln -s "$here/node_modules/@durable-streams/client" node_modules/@durable-streams/client
cat > consumer.ts <<'TS'
import { DurableStreams, type OpenOptions } from "durable-streams-local"
import { serveLocalStreams, registerLocalStreams } from "durable-streams-local/service-worker"
import { DurableStream, stream } from "@durable-streams/client"

const options: OpenOptions = {
  longPollTimeoutMs: 500,
  maxChunkBytes: 1 << 16,
  maxBodyBytes: 1 << 20,
  now: () => Date.now(),
  allowLocalWebhooks: false,
  webhookFetch: fetch,
}
export async function demo(): Promise<number> {
  const local: DurableStreams = await DurableStreams.open(options)
  const handle = await DurableStream.create({ url: "https://l/v1/stream/a", contentType: "application/json", fetch: local.fetch })
  await handle.append(JSON.stringify({ ok: true }))
  const items = await (await stream({ url: handle.url, fetch: local.fetch, live: false })).json()
  const res: Response = await local.fetch(new Request("https://l/v1/stream/a", { method: "HEAD" }))
  local.tick()
  local.close()
  return items.length + res.status + local.pending
}
export const worker = () => serveLocalStreams({ prefix: "/v1/stream/", takeControl: true }).server()
export const page = (): Promise<ServiceWorkerRegistration> => registerLocalStreams("/sw.js", { scope: "/" })
TS
"$here/node_modules/.bin/tsc" --noEmit --strict --skipLibCheck false --target es2022 \
  --module nodenext --moduleResolution nodenext --lib es2022,dom,dom.iterable consumer.ts
echo "npm pack smoke test: declarations type-check"
