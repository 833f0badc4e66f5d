#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing
# (idempotent, quick when already installed), checks style and portability,
# runs the Rust suites, builds the wasm host's npm package and tests it in
# Node and headless Chromium, then runs the official conformance suite
# against the native server in both storage modes and against the wasm host,
# and finally tests the offline demo (www/) in headless Chromium.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Where cargo puts what it builds (CARGO_TARGET_DIR is honoured, so a
# shared target dir never leaves a stale binary under test).
cargo_target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
command -v node >/dev/null || { echo "node (>= 20) is required" >&2; exit 1; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver
fi
(cd tests/official && npm ci --no-audit --no-fund --silent)
(cd tests/wasm && npm ci --no-audit --no-fund --silent)

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p durable-streams-wasm --target wasm32-unknown-unknown --locked -- -D warnings

step "core portability: wasm32 build and a clean dependency tree"
cargo build -p durable-streams-core --target wasm32-unknown-unknown --locked
forbidden=$(cargo tree -p durable-streams-core -e normal --prefix none --locked \
  | grep -E '^(tokio|axum|hyper|redb|mio|web-sys|js-sys|wasm-bindgen) ' || true)
if [ -n "$forbidden" ]; then
  echo "core depends on runtime or platform crates:"; echo "$forbidden"; exit 1
fi
echo "core builds for wasm32-unknown-unknown; no tokio/axum/hyper/redb/mio/web-sys in its tree"

step "Rust tests (unit, conformance scenarios on every host, model-based properties)"
cargo test --workspace --locked

step "wasm host: build the npm package (host-wasm/pkg)"
scripts/build-wasm.sh

step "our conformance scenarios on the wasm host, in Node and in headless Chromium"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
cargo test -p durable-streams-conformance --target wasm32-unknown-unknown --test wasm --locked
CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_USE_BROWSER=1 \
  cargo test -p durable-streams-conformance --target wasm32-unknown-unknown --test wasm --locked \
  2>&1 | grep -vE '^test .* \.\.\. ok$'

step "wasm host: official client in Node and headless Chromium, Service Worker, npm pack"
node --test tests/wasm/client.test.mjs tests/wasm/browser.test.mjs
tests/wasm/pack-smoke.sh

step "official conformance suite against the native server and the wasm host"
cargo build --release -p durable-streams-server --locked
DS_OFFICIAL_TARGETS="native-redb native-memory wasm-node" \
  scripts/official-suite.sh "$cargo_target/release/durable-streams-server"

step "benchmark tool: every scenario once at tiny sizes, both modes (its checks, not its numbers)"
bin="$cargo_target/release"
"$bin/durable-streams-bench" run \
  --target "name=ours-durable;durable=true;base=/v1/stream/;cmd=$bin/durable-streams-server --bind {addr} --data-dir {dir}" \
  --target "name=ours-memory;durable=false;base=/v1/stream/;cmd=$bin/durable-streams-server --bind {addr} --memory" \
  --rounds 1 --duration-secs 1 --conns 4 --catchup-mib 2 --catchup-reads 1 --readers 20 \
  --fanout-secs 1 --streams 200 --restart-streams 50 --restart-mib 4 --restart-times 1 \
  --logs "$cargo_target/bench-smoke-logs" --out "$cargo_target/bench-smoke.json"
# The fan-out scenarios' kernel arrival stamps (Linux) must have worked.
node -e '
  const runs = require(process.argv[1]).runs.filter((r) => r.scenario.startsWith("fanout"));
  const bad = runs.filter((r) => !("arrival_p99_ms" in r.metrics));
  if (!runs.length || bad.length) {
    console.error("fan-out runs without arrival latencies:", bad.map((r) => r.scenario + "/" + r.target));
    process.exit(1);
  }' "$cargo_target/bench-smoke.json"
echo "every scenario verified what it measured (bare hyper included)"

step "archives between the native server and the wasm host"
DS_SERVER_BIN="$cargo_target/release/durable-streams-server" node --test tests/wasm/archive.test.mjs

step "official client in headless Chromium, from another origin, against the native server (CORS)"
DS_SERVER_BIN="$cargo_target/release/durable-streams-server" node --test tests/wasm/cors.test.mjs

step "offline demo (www/): build www/dist, test it in headless Chromium served by the native server"
scripts/build-www.sh
DS_SERVER_BIN="$cargo_target/release/durable-streams-server" node --test tests/wasm/www.test.mjs
echo "screenshots of each step: target/www-screenshots/"

step "all tests passed"
