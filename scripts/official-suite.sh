#!/usr/bin/env bash
# Runs the official conformance suite against our hosts: the native server
# binary with redb file shards (native-redb) and with --memory
# (native-memory), and the wasm host's npm package (host-wasm/pkg, built by
# scripts/build-wasm.sh) behind a Node http adapter (wasm-node).
# usage: scripts/official-suite.sh [path-to-server-binary]
# DS_OFFICIAL_TARGETS picks the targets (default: "native-redb native-memory").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$(cd "$root" && realpath -m "${CARGO_TARGET_DIR:-target}")/release/durable-streams-server}
suite=$root/tests/official
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() {
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$1/v1/stream/__ready"; then return 0; fi
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2
  return 1
}

status=0
for mode in ${DS_OFFICIAL_TARGETS:-native-redb native-memory}; do
  port=$(free_port)
  args=(--bind "127.0.0.1:$port" --long-poll-timeout-ms 500)
  case $mode in
    # The subscription cases run a webhook receiver on localhost.
    native-redb) "$bin" "${args[@]}" --allow-local-webhooks --data-dir "$work/data" > "$work/$mode.log" 2>&1 & ;;
    native-memory) "$bin" "${args[@]}" --allow-local-webhooks --memory > "$work/$mode.log" 2>&1 & ;;
    wasm-node) node "$root/tests/wasm/serve-node.mjs" --port "$port" --long-poll-timeout-ms 500 \
        --allow-local-webhooks > "$work/$mode.log" 2>&1 & ;;
    *) echo "unknown target $mode" >&2; exit 2 ;;
  esac
  pids+=($!)
  wait_ready "$port"
  (cd "$suite" && DS_URL="http://127.0.0.1:$port" DS_SUBSCRIPTIONS=1 NO_COLOR=1 npx --no-install vitest run \
      --testTimeout=20000 --reporter=dot --reporter=json --outputFile="$work/$mode.json" \
      conformance.test.mjs > "$work/$mode.out" 2>&1) || true
  if ! node "$suite/check-results.mjs" "$work/$mode.json" "$mode"; then
    status=1
    tail -n 60 "$work/$mode.out"
  fi
  kill "${pids[-1]}" 2>/dev/null || true
done
total=$(node -e '
  let p = 0, f = 0
  for (const file of process.argv.slice(1)) {
    try {
      const r = JSON.parse(require("fs").readFileSync(file, "utf8"))
      p += r.numPassedTests; f += r.numFailedTests
    } catch { f += 1 }
  }
  console.log(`${p} passed, ${f} failed`)
' "$work"/*.json)
echo "official: $total"
exit $status
