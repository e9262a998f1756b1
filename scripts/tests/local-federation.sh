#!/usr/bin/env bash
# Runs deploy/local/federation briefly, as CI does: a catalog and 17 nodes (a city platform
# and 16 districts) come up on 127.0.0.1, each serves a verified query, `status` shows every
# daemon SERVING, `stop` ends them all on SIGTERM; then `up` on the same folder starts the
# same federation with its data (each node serves its query again) and `stop` ends it.
# Every step is bounded in time. Run by ./scripts/test after the build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="$here/../../deploy/local/federation"
bin="${CARGO_TARGET_DIR:?}/debug"
nodes=${EXCHANGE_LOCAL_NODES:-17}
work="$(mktemp -d)"
dir="$work/federation"
# 1 + nodes consecutive free loopback ports.
base="$(python3 - "$nodes" <<'PY'
import random, socket, sys
need = int(sys.argv[1]) + 1
for _ in range(200):
    base = random.randrange(20000, 60000 - need)
    socks = []
    try:
        for port in range(base, base + need):
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break
else:
    sys.exit("no run of free loopback ports")
PY
)"
cleanup() {
  # Whatever happened, no daemon of this run outlives it.
  [ -f "$dir/federation.env" ] && timeout 60 "$script" stop --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { printf 'FAIL local federation: %s\n' "$*" >&2; for f in "$dir"/logs/*.log; do [ -f "$f" ] && tail -n 5 "$f" >&2; done; exit 1; }
served() { grep -c '^served and verified: ' <<<"$1" || true; }

out="$(timeout 900 "$script" up --dir "$dir" --nodes "$nodes" --base-port "$base" --bin "$bin")" || fail "up: $out"
[ "$(served "$out")" -eq "$nodes" ] || fail "up served $(served "$out") of $nodes queries: $out"
printf 'ok   local federation: a catalog and %s nodes up, a verified query on each\n' "$nodes"

status="$(timeout 120 "$script" status --dir "$dir")" || fail "status: $status"
[ "$(grep -c ' SERVING$' <<<"$status")" -eq $((nodes + 1)) ] || fail "status: $status"
printf 'ok   local federation: status shows %s daemons SERVING\n' $((nodes + 1))

timeout 120 "$script" stop --dir "$dir" || fail "stop"
if timeout 120 "$script" status --dir "$dir" >"$work/status" 2>&1; then fail "status after stop: $(cat "$work/status")"; fi
[ "$(grep -c ' stopped ' "$work/status")" -eq $((nodes + 1)) ] || fail "status after stop: $(cat "$work/status")"
for log in "$dir"/logs/*.log; do
  grep -q 'shutting down' "$log" || fail "$(basename "$log") shows no graceful shutdown"
done
printf 'ok   local federation: stop ended every daemon on SIGTERM\n'

timeout 300 "$script" up --dir "$dir" >/dev/null || fail "up again"
out="$(timeout 300 "$script" query --dir "$dir")" || fail "query after restart: $out"
[ "$(served "$out")" -eq "$nodes" ] || fail "after restart $(served "$out") of $nodes queries served: $out"
timeout 120 "$script" stop --dir "$dir" || fail "stop after restart"
printf 'ok   local federation: up again from its folders, every node serves its data, stopped\n'
