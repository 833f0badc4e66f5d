#!/usr/bin/env bash
# Builds the offline demo into www/dist/ (never committed): the page's
# sources from www/, the npm package durable-streams-local from
# host-wasm/pkg/ (built first when missing), and @durable-streams/client
# bundled with esbuild (both pinned in www/package-lock.json), so the page
# needs no CDN. `durable-streams-server` serves www/dist/ at / when it is
# present; any static file server on localhost or https works too.
# usage: scripts/build-www.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ ! -f host-wasm/pkg/ds_wasm_bg.wasm ]; then
  scripts/build-wasm.sh
fi
if [ ! -x www/node_modules/.bin/esbuild ] \
  || [ www/package-lock.json -nt www/node_modules/.package-lock.json ]; then
  (cd www && npm ci --no-audit --no-fund --silent)
fi
node www/build.mjs host-wasm/pkg
