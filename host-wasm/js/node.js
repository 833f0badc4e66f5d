// The Node entry of the package: compiles the WebAssembly module from the
// file next to this one (Node's fetch cannot load file: URLs), then exposes
// the same API as the browser entry.
import { readFileSync } from "node:fs"
import { initSync } from "./ds_wasm.js"

initSync({ module: readFileSync(new URL("./ds_wasm_bg.wasm", import.meta.url)) })

export { DurableStreams } from "./durable-streams.js"
