#!/usr/bin/env bash
# Builds the npm package of the wasm host into host-wasm/pkg/ (never
# committed): release wasm32 build (profile wasm-release: opt-level z, LTO,
# one codegen unit, panic=abort), wasm-bindgen --target web, wasm-opt -Oz
# from the npm binaryen package, then the package files from host-wasm/js/.
# Installs what is missing: the wasm32 target, wasm-bindgen-cli at the
# version the crate pins, the pinned binaryen. Prints the .wasm size.
# usage: scripts/build-wasm.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
src=host-wasm/js
pkg=host-wasm/pkg
work=target/wasm-pkg
name=ds_wasm

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen's CLI must be exactly the version of the crate it post-processes.
want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' Cargo.toml)
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $want" ]; then
  echo "installing wasm-bindgen-cli $want (takes several minutes)"
  # Not --locked: its lockfile names a dependency version the registry lacks.
  cargo install wasm-bindgen-cli --version "$want"
fi

tools=host-wasm/tools
if [ ! -x "$tools/node_modules/.bin/wasm-opt" ] \
  || [ "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]; then
  (cd "$tools" && npm ci --no-audit --no-fund --silent)
fi

cargo build -p durable-streams-wasm --target wasm32-unknown-unknown --profile wasm-release --locked
mkdir -p "$work"
rm -rf "$work/bindgen"
wasm-bindgen --target web --out-dir "$work/bindgen" \
  "$(realpath -m "${CARGO_TARGET_DIR:-target}")/wasm32-unknown-unknown/wasm-release/$name.wasm"

# wasm-opt takes a while; reuse its output while its input is unchanged.
hash=$(sha256sum "$work/bindgen/${name}_bg.wasm" | cut -c1-16)
optimised="$work/opt-$hash.wasm"
if [ ! -f "$optimised" ]; then
  rm -f "$work"/opt-*.wasm
  "$tools/node_modules/.bin/wasm-opt" -Oz --strip-debug --strip-producers \
    "$work/bindgen/${name}_bg.wasm" -o "$optimised.tmp"
  mv "$optimised.tmp" "$optimised"
fi

rm -rf "$pkg"
mkdir -p "$pkg"
cp "$work/bindgen/$name.js" "$pkg/"
cp "$optimised" "$pkg/${name}_bg.wasm"
cp "$src"/durable-streams.js "$src"/node.js "$src"/service-worker.js \
  "$src"/index.d.ts "$src"/service-worker.d.ts "$pkg/"

raw=$(wc -c < "$pkg/${name}_bg.wasm")
gz=$(gzip -9 -c "$pkg/${name}_bg.wasm" | wc -c)
version=$(cargo metadata --no-deps --format-version 1 --locked \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
      const p=JSON.parse(s).packages.find(p=>p.name==="durable-streams-wasm");console.log(p.version)})')
kb() { awk -v b="$1" 'BEGIN { printf "%.0f KB", b / 1024 }'; }
node -e '
  const fs = require("fs")
  const [src, pkg, version, raw, gz] = process.argv.slice(1)
  const manifest = JSON.parse(fs.readFileSync(`${src}/package.json`, "utf8"))
  manifest.version = version
  fs.writeFileSync(`${pkg}/package.json`, JSON.stringify(manifest, null, 2) + "\n")
  const readme = fs.readFileSync(`${src}/README.md`, "utf8")
    .replaceAll("{{WASM_RAW}}", raw).replaceAll("{{WASM_GZIP}}", gz)
  fs.writeFileSync(`${pkg}/README.md`, readme)
' "$src" "$pkg" "$version" "$(kb "$raw") ($raw bytes)" "$(kb "$gz") ($gz bytes)"

echo "built $pkg: durable-streams-local $version; ${name}_bg.wasm $(kb "$raw") raw, $(kb "$gz") gzip"
