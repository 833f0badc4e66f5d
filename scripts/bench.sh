#!/usr/bin/env bash
# The benchmark (issue 8): builds the release binaries, then runs every
# scenario against our server with redb file shards (durable, the default)
# and with --memory, a bare hyper server as the baseline (measured in the
# same run, alternating with the targets), and any peer servers that are
# installed. Prints a table; writes JSON and Markdown to target/bench/.
# Every server listens on 127.0.0.1 only. Benchmarks are not tests: nothing
# here runs in scripts/test.sh.
#
#   scripts/bench.sh                      # everything, ours only (~12 min)
#   scripts/bench.sh --quick              # short run with small sizes (~2 min)
#   scripts/bench.sh --scenarios append-many,catchup-read --targets ours-memory
#   scripts/bench.sh --peers DIR          # also the peers installed under DIR
#   scripts/bench.sh --peers DIR --install-peers   # install them there first
#   scripts/bench.sh -- --rounds 3 --duration-secs 10   # extra flags for the tool
#
# Peers (never required; looked up under --peers DIR or $DS_BENCH_PEERS):
#   DIR/dss/bin/durable-streams-server   crate durable-streams-server 0.3.0 ("DSS")
#   DIR/ers/bin/durable-streams-server   crate durable-streams 0.1.5 (Electric)
#   DIR/node/node_modules/@durable-streams/server   npm @durable-streams/server 0.3.7
# --install-peers installs the missing ones there (cargo install / npm install;
# the two crates compile for several minutes).
#
# Targets: ours-durable ours-memory dss-memory dss-acid ers-wal ers-memory
# node-memory node-file, and wasm-node (the wasm host's fetch in-process,
# scripts/bench-wasm.mjs, when host-wasm/pkg is built); the bare baseline (bare-hyper) is added by the tool
# for the append scenarios (--no-bare after -- to skip it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=0
scenarios=""
only_targets=""
peers=${DS_BENCH_PEERS:-}
install_peers=0
out=target/bench/results.json
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --scenarios) scenarios=$2; shift ;;
    --targets) only_targets=$2; shift ;;
    --peers) peers=$2; shift ;;
    --install-peers) install_peers=1 ;;
    --out) out=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$install_peers" = 1 ]; then
  [ -n "$peers" ] || { echo "--install-peers needs --peers DIR" >&2; exit 2; }
  mkdir -p "$peers"
  peers=$(cd "$peers" && pwd)
  [ -x "$peers/dss/bin/durable-streams-server" ] ||
    cargo install durable-streams-server --version 0.3.0 --root "$peers/dss" ||
    echo "warning: DSS did not install; going on without it" >&2
  [ -x "$peers/ers/bin/durable-streams-server" ] ||
    cargo install durable-streams --version 0.1.5 --root "$peers/ers" ||
    echo "warning: Electric's server did not install; going on without it" >&2
  if [ ! -d "$peers/node/node_modules/@durable-streams/server" ]; then
    mkdir -p "$peers/node"
    (cd "$peers/node" && { [ -f package.json ] || npm init -y >/dev/null; } &&
      npm install --no-audit --no-fund @durable-streams/server@0.3.7) ||
      echo "warning: the Node reference server did not install; going on without it" >&2
  fi
fi

echo "==> build (release)"
cargo build --release -p durable-streams-server --bins
# The build leaves its output dirty in the page cache: write it back now,
# not during the first durable scenario, where its writeback would compete
# with the fsyncs being measured.
sync
# CARGO_TARGET_DIR is honoured: the binaries just built, never stale ones.
bin=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release
mkdir -p target/bench

# Many live readers need file descriptors (best effort).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

targets=()
add() { # name durable base cmd…
  local name=$1 durable=$2 base=$3; shift 3
  if [ -n "$only_targets" ] && [[ ",$only_targets," != *",$name,"* ]]; then return; fi
  targets+=(--target "name=$name;durable=$durable;base=$base;cmd=$*")
}
add ours-durable true /v1/stream/ "$bin/durable-streams-server --bind {addr} --data-dir {dir}"
add ours-memory false /v1/stream/ "$bin/durable-streams-server --bind {addr} --memory"
if [ -n "$peers" ]; then
  peers=$(cd "$peers" && pwd)
  dss=$peers/dss/bin/durable-streams-server
  if [ -x "$dss" ]; then
    # Its default limits (100 MB in memory, 10 MiB per stream) are raised so
    # the 64 MiB and 1 GiB scenarios fit; request logging is off.
    dss_env="DS_SERVER__BIND_ADDRESS={addr} DS_LIMITS__MAX_MEMORY_BYTES=8589934592 DS_LIMITS__MAX_STREAM_BYTES=2147483648 DS_OBSERVABILITY__RUST_LOG=warn RUST_LOG=warn"
    add dss-memory false /v1/stream/ "env $dss_env DS_STORAGE__MODE=memory $dss"
    add dss-acid true /v1/stream/ "env $dss_env DS_STORAGE__MODE=acid DS_STORAGE__DATA_DIR={dir} $dss"
  fi
  ers=$peers/ers/bin/durable-streams-server
  if [ -x "$ers" ]; then
    add ers-wal true /v1/stream/ "$ers --host 127.0.0.1 --port {port} --data-dir {dir} --durability wal"
    add ers-memory false /v1/stream/ "$ers --host 127.0.0.1 --port {port} --data-dir {dir} --durability memory"
  fi
  if [ -d "$peers/node/node_modules/@durable-streams/server" ]; then
    cat > "$peers/node/serve.mjs" <<'EOF'
// Starts the Node reference server: node serve.mjs PORT [DATA_DIR]
import { DurableStreamTestServer } from "@durable-streams/server"
const [port, dataDir] = process.argv.slice(2)
const options = { port: Number(port), host: "127.0.0.1" }
if (dataDir) options.dataDir = dataDir
const server = new DurableStreamTestServer(options)
await server.start()
console.log(`node reference server on 127.0.0.1:${port}${dataDir ? ` (files in ${dataDir})` : " (memory)"}`)
const stop = async () => { await server.stop(); process.exit(0) }
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
EOF
    add node-memory false /v1/stream/ "node $peers/node/serve.mjs {port}"
    add node-file true /v1/stream/ "node $peers/node/serve.mjs {port} {dir}"
  fi
fi
wasm=0
if [ -f host-wasm/pkg/node.js ] && { [ -z "$only_targets" ] || [[ ",$only_targets," == *",wasm-node,"* ]]; }; then
  wasm=1
fi
[ ${#targets[@]} -gt 0 ] || [ "$wasm" = 1 ] || { echo "no target selected" >&2; exit 2; }

args=(run "${targets[@]}" --out "$out" --markdown "${out%.json}.md" --logs target/bench/logs)
[ -n "$scenarios" ] && args+=(--scenarios "$scenarios")
if [ "$quick" = 1 ]; then
  args+=(--rounds 1 --duration-secs 2 --catchup-mib 16 --catchup-reads 2 --readers 100
    --fanout-secs 3 --streams 2000 --restart-streams 1000 --restart-mib 64 --restart-times 1)
fi
args+=("${extra[@]}")

echo "==> machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "==> load: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
if [ ${#targets[@]} -gt 0 ]; then
  "$bin/durable-streams-bench" "${args[@]}" || status=$?
fi

# The wasm host in-process (Node), when its package has been built
# (scripts/build-wasm.sh): no HTTP, DurableStreams.fetch called directly.
if [ "$wasm" = 1 ]; then
  echo "==> wasm-node: the wasm host's fetch in-process (host-wasm/pkg)"
  wasm_args=(--out "${out%.json}-wasm.json")
  [ -n "$scenarios" ] && wasm_args+=(--scenarios "$scenarios")
  [ "$quick" = 1 ] && wasm_args+=(--seconds 2 --catchup-mib 16)
  node scripts/bench-wasm.mjs "${wasm_args[@]}" || status=$?
elif [ ! -f host-wasm/pkg/node.js ]; then
  echo "==> wasm-node skipped: host-wasm/pkg is not built (scripts/build-wasm.sh)"
fi
echo "==> load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
