#!/usr/bin/env bash
# Instructions per join, counted by callgrind (stable on a loaded machine, where CPU time is not):
# starts the store (or, with FLOOR=1, benches/join-floor) under `valgrind --tool=callgrind`, zeroes
# the counters once it listens, runs SHOPPERS shoppers of shopper-bench (upgrade, cart join, track,
# one add_item), dumps the counters when the dashboard counts every shopper (the joins), and again
# after the shoppers left (the closes); prints instructions per join and per close, and writes the
# top inclusive functions of the joins to $OUT/<server>-join.txt. With IDLE=1 the shoppers stay
# connected for one heartbeat each first (the clients beat every 30 s): the counters are dumped
# again 34 s after the joins, and the instructions of that idle window are printed per shopper
# (one heartbeat each, plus the node's own timers over 34 s).
#
#   bash scripts/callgrind-join.sh              # the store
#   FLOOR=1 bash scripts/callgrind-join.sh      # the floor
#
# Settings (environment): SHOPPERS (300), RAMP (100 per second), FLOOR (0), IDLE (0), BIN_DIR
# (target/release), PORT (6801), OUT (/tmp/callgrind-join-<time>).
set -euo pipefail
cd "$(dirname "$0")/.."

SHOPPERS=${SHOPPERS:-300}
RAMP=${RAMP:-100}
FLOOR=${FLOOR:-0}
IDLE=${IDLE:-0}
idle_secs=34 # one heartbeat of every shopper (the clients beat 30 s after their join), and a margin
BIN_DIR=${BIN_DIR:-target/release}
PORT=${PORT:-6801}
OUT=${OUT:-/tmp/callgrind-join-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
server=store
[ "$FLOOR" = 1 ] && server=floor
url="http://127.0.0.1:$PORT"

export SECRET_KEY_BASE=${SECRET_KEY_BASE:-$(head -c 48 /dev/urandom | base64 -w0)}
export ADMIN_USER=admin ADMIN_PASSWORD=password RUST_LOG=${RUST_LOG:-warn}
export DATABASE_URL="sqlite://$OUT/store.db" PUBSUB_URL=local PORT
if [ "$FLOOR" = 1 ]; then
  cmd=("$BIN_DIR/join-floor")
else
  "$BIN_DIR/sneakers23" seed --rng-seed 23 >/dev/null
  cmd=("$BIN_DIR/sneakers23" serve)
fi
valgrind --tool=callgrind --callgrind-out-file="$OUT/$server.%p.out" "${cmd[@]}" >"$OUT/$server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
until grep -q "listening on" "$OUT/$server.log"; do
  kill -0 "$pid" 2>/dev/null || { cat "$OUT/$server.log" >&2; exit 1; }
  sleep 0.5
done
if [ "$FLOOR" != 1 ]; then
  "$BIN_DIR/sneakers23" release 1 --node-url "$url" >/dev/null
  "$BIN_DIR/sneakers23" release 2 --node-url "$url" >/dev/null
fi
counted() { curl -s -u admin:password "$url/admin/aggregate.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["shoppers"])' 2>/dev/null || echo 0; }
# Wait until it is idle (the first aggregate published), then count from zero.
until [ "$(counted)" = 0 ]; do sleep 0.5; done
sleep 2
callgrind_control --zero "$pid" >/dev/null
hold=8
[ "$IDLE" = 1 ] && hold=$((8 + idle_secs))
"$BIN_DIR/shopper-bench" --url "$url" -n "$SHOPPERS" --ramp-rate "$RAMP" --hold-secs "$hold" --sources 1 \
  --threads 1 --reply-timeout-secs 60 --json >"$OUT/$server-bench.json" 2>"$OUT/$server-bench.err" &
bench=$!
until [ "$(counted)" -ge "$SHOPPERS" ]; do
  kill -0 "$bench" 2>/dev/null || { cat "$OUT/$server-bench.err" >&2; exit 1; }
  sleep 0.5
done
callgrind_control --dump=joins "$pid" >/dev/null
part=2
if [ "$IDLE" = 1 ]; then
  sleep "$idle_secs"
  callgrind_control --dump=idle "$pid" >/dev/null
  part=3
fi
wait "$bench"
sleep 2
callgrind_control --dump=closes "$pid" >/dev/null
sleep 1
joins="$OUT/$server.$pid.out.1"
closes="$OUT/$server.$pid.out.$part"
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
idle=0
[ "$IDLE" = 1 ] && idle=$(total "$OUT/$server.$pid.out.2")
python3 - "$server" "$SHOPPERS" "$(total "$joins")" "$(total "$closes")" "$idle" "$idle_secs" <<'EOF' | tee "$OUT/$server.txt"
import sys
server, n, joins, closes, idle, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
print(f"{server}: {joins / n:,.0f} instructions per join, {closes / n:,.0f} per close ({n} shoppers)")
if idle:
    print(f"{server}: {idle / n:,.0f} instructions per shopper over {secs} s idle (one heartbeat each, and the node's timers)")
EOF
callgrind_annotate --inclusive=yes "$joins" 2>/dev/null | head -80 >"$OUT/$server-join.txt"
echo "top inclusive functions of the joins: $OUT/$server-join.txt"
