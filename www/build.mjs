// Assembles the deployable demo in www/dist/ (run by scripts/build-www.sh):
//   index.html, style.css, js/        this folder's sources, as they are
//   pkg/                              the npm package durable-streams-local (host-wasm/pkg)
//   vendor/durable-streams-client.js  @durable-streams/client bundled as one ES module
//   sw.js                             with this build's id and the list of files to cache
// Only copies and bundles: no transpiling, so the served code is the source.
import { createHash } from "node:crypto"
import { cpSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const here = dirname(fileURLToPath(import.meta.url))
const pkg = process.argv[2] ?? join(here, "../host-wasm/pkg")
const out = join(here, "dist")
const tmp = `${out}.tmp`

rmSync(tmp, { recursive: true, force: true })
mkdirSync(join(tmp, "pkg"), { recursive: true })
mkdirSync(join(tmp, "vendor"), { recursive: true })
for (const file of ["index.html", "style.css"]) cpSync(join(here, file), join(tmp, file))
cpSync(join(here, "js"), join(tmp, "js"), { recursive: true })
for (const file of ["durable-streams.js", "service-worker.js", "ds_wasm.js", "ds_wasm_bg.wasm"]) {
  cpSync(join(pkg, file), join(tmp, "pkg", file))
}

const client = JSON.parse(readFileSync(join(here, "node_modules/@durable-streams/client/package.json"), "utf8"))
await build({
  entryPoints: ["@durable-streams/client"],
  absWorkingDir: here,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "inline",
  outfile: join(tmp, "vendor/durable-streams-client.js"),
  logLevel: "warning",
  // fastq (a dependency of the client) calls process.nextTick, as in Node.
  banner: {
    js: `/* @durable-streams/client ${client.version} (${client.license}), bundled with its dependencies */\nconst process = { env: {}, nextTick: (f, ...a) => queueMicrotask(() => f(...a)) };`,
  },
})

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? walk(path) : [path]
  })
}

// The build id covers every file, so any change makes a new worker and cache.
const files = walk(tmp).map((path) => relative(tmp, path).split("\\").join("/")).sort()
const hash = createHash("sha256")
for (const file of files) hash.update(file).update("\0").update(readFileSync(join(tmp, file)))
const sw = readFileSync(join(here, "sw.js"), "utf8")
hash.update(sw)
const id = hash.digest("hex").slice(0, 12)
const cached = ["./", ...files.map((f) => `./${f}`)]
const filled = sw
  .replace(/^const BUILD = "dev"$/m, `const BUILD = ${JSON.stringify(id)}`)
  .replace(/^const FILES = \[\]$/m, `const FILES = ${JSON.stringify(cached)}`)
if (filled === sw) throw new Error("sw.js: BUILD/FILES placeholders not found")
writeFileSync(join(tmp, "sw.js"), filled)

rmSync(out, { recursive: true, force: true })
renameSync(tmp, out)
const bytes = walk(out).reduce((sum, path) => sum + statSync(path).size, 0)
console.log(`built www/dist: build ${id}, ${files.length + 1} files, ${Math.round(bytes / 1024)} KB`)
