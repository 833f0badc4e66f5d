// A tiny static file server on 127.0.0.1 for the browser tests:
//   /pkg/…      the built npm package (host-wasm/pkg)
//   /client.js  @durable-streams/client bundled as one ES module (its
//               dependencies are CommonJS, which browsers cannot import)
//   /sw.js      the test service worker (at the root, so its scope is "/")
//   /scenarios.mjs  the client scenarios shared with the Node test
//   /…          this folder's pages/
// Everything else is 404, /v1/stream/ included: only a service worker
// answers those.
import http from "node:http"
import { readFile } from "node:fs/promises"
import { extname, join, normalize } from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const here = fileURLToPath(new URL(".", import.meta.url))
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
}

/** `rel` under `dir`, or undefined when it would leave `dir`. */
function inside(dir, rel) {
  const file = join(dir, normalize(rel))
  return file.startsWith(join(dir, "/")) ? file : undefined
}

/** Starts the server on a free port; resolves with its origin and a close(). */
export async function startStaticServer({ pkg = join(here, "../../host-wasm/pkg") } = {}) {
  const bundle = await build({
    entryPoints: ["@durable-streams/client"],
    absWorkingDir: here,
    bundle: true,
    format: "esm",
    platform: "browser",
    write: false,
    logLevel: "silent",
    // fastq (a dependency of the client) calls process.nextTick, as Node has.
    banner: {
      js: "const process = { env: {}, nextTick: (f, ...a) => queueMicrotask(() => f(...a)) };",
    },
  })
  const clientJs = bundle.outputFiles[0].contents
  const server = http.createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname)
    const send = (status, body, type = "text/plain") => {
      res.writeHead(status, { "content-type": type, "cache-control": "no-store" })
      res.end(body)
    }
    if (path === "/client.js") return send(200, clientJs, TYPES[".js"])
    let file
    if (path === "/sw.js") file = join(here, "pages/sw.js")
    else if (path === "/scenarios.mjs") file = join(here, "client-scenarios.mjs")
    else if (path.startsWith("/pkg/")) file = inside(pkg, path.slice(5))
    else if (!path.startsWith("/v1/")) file = inside(join(here, "pages"), path)
    if (!file) return send(404, "not found")
    try {
      send(200, await readFile(file), TYPES[extname(file)] ?? "application/octet-stream")
    } catch {
      send(404, "not found")
    }
  })
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(resolve)
      }),
  }
}
