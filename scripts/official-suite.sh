#!/usr/bin/env bash
# Runs the official conformance suite against the native server binary, once
# with redb file shards and once with --memory.
# usage: scripts/official-suite.sh [path-to-server-binary]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/durable-streams-server}
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
for mode in native-redb native-memory; do
  port=$(free_port)
  args=(--bind "127.0.0.1:$port" --long-poll-timeout-ms 500)
  if [ "$mode" = native-memory ]; then args+=(--memory); else args+=(--data-dir "$work/data"); fi
  "$bin" "${args[@]}" > "$work/$mode.log" 2>&1 &
  pids+=($!)
  wait_ready "$port"
  (cd "$suite" && DS_URL="http://127.0.0.1:$port" NO_COLOR=1 npx --no-install vitest run \
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
