// What the headless-Chromium tests share: the system Chromium with the flags
// that work on these machines, and the native server on a free loopback port.
//
// env: DS_SERVER_BIN (default target/release/durable-streams-server, else
// the debug build), CHROMIUM (default /usr/bin/chromium).
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { chromium } from "playwright-core"

const root = fileURLToPath(new URL("../..", import.meta.url))

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
]

/**
 * Launches headless Chromium with a fresh profile; resolves with its
 * context and a close() that also removes the profile.
 */
export async function launchChromium(name, options = {}) {
  const profile = mkdtempSync(join(tmpdir(), `ds-${name}-chromium-`))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    ...options,
  })
  return {
    context,
    close: async () => {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}

/** The native server binary under test. */
function serverBinary() {
  if (process.env.DS_SERVER_BIN) return process.env.DS_SERVER_BIN
  const release = join(root, "target/release/durable-streams-server")
  return existsSync(release) ? release : join(root, "target/debug/durable-streams-server")
}

async function freePort() {
  const probe = createServer()
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve))
  const { port } = probe.address()
  await new Promise((resolve) => probe.close(resolve))
  return port
}

/**
 * Starts the native server on a free loopback port with `args` (`--bind` is
 * added) and waits until its stdout says `ready`; resolves with the child
 * process and the server's origin.
 */
export async function startNativeServer(args, ready = "listening on") {
  const port = await freePort()
  const child = spawn(serverBinary(), [...args, "--bind", `127.0.0.1:${port}`], {
    stdio: ["ignore", "pipe", "inherit"],
  })
  await new Promise((resolve, reject) => {
    let out = ""
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 20_000)
    child.stdout.on("data", (d) => {
      out += d
      if (out.includes(ready)) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.on("exit", (code) => reject(new Error(`server exited (${code}): ${out}`)))
  })
  return { child, origin: `http://127.0.0.1:${port}` }
}
