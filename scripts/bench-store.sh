#!/usr/bin/env bash
# The whole-system benchmark: starts the store (one node on SQLite, or a local cluster of NODES
# nodes sharing PostgreSQL and a broker), releases both shoes, runs shopper-bench against it, and
# reports what the servers spent: RSS per shopper, CPU per join, CPU while the shoppers idle, then
# the time one stock change takes to reach every shopper's product page, and (with CHURN) the
# round trip of cart operations in the steady state.
#
#   bash scripts/bench-store.sh                          # 1 node, 10,000 shoppers
#   SHOPPERS=19000 bash scripts/bench-store.sh           # a full node (fd limit 20,000)
#   NODES=6 SHOPPERS=100000 PUBSUB=redis bash scripts/bench-store.sh
#
# Settings (environment): NODES (1), SHOPPERS (10000), RAMP (2000 shoppers/s), IDLE_SECS (60: the
# window in which idle CPU is measured, after every dashboard counted every shopper; a multiple of
# the clients' 30 s heartbeat, so that it holds exactly that many heartbeats per shopper), CHURN
# (cart operations per shopper per minute after the idle window, 0), CHURN_SECS (20), PUBSUB
# (redis | nats, clusters only), PRODUCTS (the product pages each shopper watches: 1,2; empty for
# none, to measure the issue's join alone; no stock_change is timed then), BIN_DIR
# (target/release), BASE_PORT (4100), OUT (a results folder, default /tmp/bench-store-<time>).
# HOLD_SLACK (30): seconds the load generator holds its shoppers beyond the window, added to
# SHOPPERS / RAMP (its hold starts when its ramp ends: a negative slack takes that back).
# FLOOR=1 runs benches/join-floor (the least server for the same join, issue 17) instead of the
# store: one node, no product pages (PRODUCTS is ignored), no stock change.
# BENCH_NICE (0) and BENCH_CPUS (any; e.g. 1 for the second core): the niceness and the CPUs of
# the heavy load generator (not of the light probe), so that on a machine it shares with the
# server it can be made to yield the CPU to the server it measures.
# CPU figures also say how much of it was kernel time (the process's system time). Build first:
#   cargo build --release -p sneakers23 -p shopper-bench
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-1}
SHOPPERS=${SHOPPERS:-10000}
RAMP=${RAMP:-2000}
IDLE_SECS=${IDLE_SECS:-60}
CHURN=${CHURN:-0}
CHURN_SECS=${CHURN_SECS:-20}
PUBSUB=${PUBSUB:-redis}
PRODUCTS=${PRODUCTS-1,2}
FLOOR=${FLOOR:-0}
HOLD_SLACK=${HOLD_SLACK:-30}
BENCH_NICE=${BENCH_NICE:-0}
BENCH_CPUS=${BENCH_CPUS:-}
BIN_DIR=${BIN_DIR:-target/release}
BASE_PORT=${BASE_PORT:-4100}
OUT=${OUT:-/tmp/bench-store-$(date +%Y%m%d-%H%M%S)}
S23="$BIN_DIR/sneakers23"
BENCH="$BIN_DIR/shopper-bench"
mkdir -p "$OUT"
if [ "$FLOOR" = 1 ]; then
  [ "$NODES" = 1 ] || { echo "FLOOR=1 runs one node" >&2; exit 2; }
  PRODUCTS=
fi

log() { printf '[bench-store] %s\n' "$*" >&2; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

export SECRET_KEY_BASE=${SECRET_KEY_BASE:-$(head -c 48 /dev/urandom | base64 -w0)}
export ADMIN_USER=admin ADMIN_PASSWORD=password RUST_LOG=${RUST_LOG:-warn}
if [ "$NODES" -gt 1 ]; then
  db=sneakers23_bench
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
  case "$PUBSUB" in
    redis) export PUBSUB_URL="redis://127.0.0.1:6379/?cluster=bench$$" ;;
    nats) export PUBSUB_URL="nats://127.0.0.1:4222/?cluster=bench$$" ;;
    *) echo "PUBSUB must be redis or nats" >&2; exit 2 ;;
  esac
else
  export DATABASE_URL="sqlite://$OUT/store.db"
  export PUBSUB_URL=local
fi
[ "$FLOOR" = 1 ] || "$S23" seed --rng-seed 23 >/dev/null

urls=()
for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + i))
  if [ "$FLOOR" = 1 ]; then
    PORT=$port "$BIN_DIR/join-floor" >"$OUT/node$i.log" 2>&1 &
  else
    PORT=$port NODE_NAME="bench$i" "$S23" serve >"$OUT/node$i.log" 2>&1 &
  fi
  pids+=($!)
  urls+=("http://127.0.0.1:$port")
done
for i in $(seq 1 "$NODES"); do
  until grep -q "listening on" "$OUT/node$i.log"; do
    kill -0 "${pids[$((i - 1))]}" 2>/dev/null || { cat "$OUT/node$i.log" >&2; exit 1; }
    sleep 0.2
  done
done
if [ "$FLOOR" != 1 ]; then
  "$S23" release 1 --node-url "${urls[0]}" >/dev/null
  "$S23" release 2 --node-url "${urls[0]}" >/dev/null
fi

# clock ticks of user + system time of a process
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# clock ticks of system (kernel) time alone: the socket work the kernel does for the process
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
sum_over_nodes() { local f=$1 total=0; for pid in "${pids[@]}"; do total=$((total + $($f "$pid"))); done; echo "$total"; }
# the same, summed over the load generator and its worker processes
bench_ticks() { local total=0 pid; for pid in "$1" $(pgrep -P "$1" || true); do total=$((total + $($2 "$pid"))); done; echo "$total"; }
shoppers_counted() { # the smallest shopper count over every node's dashboard aggregate
  local min=-1
  for url in "${urls[@]}"; do
    n=$(curl -s -u admin:password "$url/admin/aggregate.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["shoppers"])' 2>/dev/null || echo 0)
    if [ "$min" -lt 0 ] || [ "$n" -lt "$min" ]; then min=$n; fi
  done
  echo "$min"
}

rss_before=$(sum_over_nodes rss_kib)
cpu_before=$(sum_over_nodes cpu_ticks)
sys_before=$(sum_over_nodes sys_ticks)
check=()
for url in "${urls[@]}"; do check+=(--check-admin "$url/admin/aggregate.json"); done
products=()
[ -n "$PRODUCTS" ] && products=(--products "$PRODUCTS")
bench_urls=()
for url in "${urls[@]}"; do bench_urls+=(--url "$url"); done
hold=$((IDLE_SECS + HOLD_SLACK + SHOPPERS / RAMP))
churn=()
if [ "$CHURN" != 0 ]; then
  # churning shoppers start at once: the idle window then measures them, so it comes without
  hold=$((CHURN_SECS + 15 + SHOPPERS / RAMP))
  churn=(--churn-per-minute "$CHURN")
fi
log "$NODES node(s), $SHOPPERS shoppers at $RAMP/s (load generator at nice $BENCH_NICE, CPUs ${BENCH_CPUS:-any}); results in $OUT"
pin=()
[ -n "$BENCH_CPUS" ] && pin=(taskset -c "$BENCH_CPUS")
"${pin[@]}" nice -n "$BENCH_NICE" "$BENCH" "${bench_urls[@]}" -n "$SHOPPERS" --ramp-rate "$RAMP" --hold-secs "$hold" --sources 8 \
  "${products[@]}" "${churn[@]}" --json --plot "$OUT/shoppers.svg" "${check[@]}" \
  >"$OUT/bench.json" 2>"$OUT/bench.err" &
bench_pid=$!
start=$(date +%s.%N)
bench_cpu_before=$(bench_ticks "$bench_pid" cpu_ticks)
bench_sys_before=$(bench_ticks "$bench_pid" sys_ticks)
until [ "$(shoppers_counted)" -ge "$SHOPPERS" ]; do
  kill -0 "$bench_pid" 2>/dev/null || { log "shopper-bench ended early"; cat "$OUT/bench.err" >&2; exit 1; }
  sleep 0.5
done
counted_at=$(date +%s.%N)
cpu_ramped=$(sum_over_nodes cpu_ticks)
sys_ramped=$(sum_over_nodes sys_ticks)
bench_cpu_ramped=$(bench_ticks "$bench_pid" cpu_ticks)
bench_sys_ramped=$(bench_ticks "$bench_pid" sys_ticks)
rss_held=$(sum_over_nodes rss_kib)
window=$IDLE_SECS
[ "$CHURN" != 0 ] && window=$CHURN_SECS
if [ "$CHURN" != 0 ]; then
  # A light probe (20 shoppers, 100 cart operations/s together, on one thread) measures the
  # server's latency under the load without the heavy client's own scheduling delays in its
  # figures.
  "$BENCH" --url "${urls[0]}" -n 20 --ramp-rate 100 --hold-secs $((window - 2)) \
    --churn-per-minute 300 --sources 1 --threads 1 --json >"$OUT/probe.json" 2>"$OUT/probe.err" &
  probe_pid=$!
fi
sleep "$window" # the measurement window: idle, or churning
cpu_idle_end=$(sum_over_nodes cpu_ticks)
sys_idle_end=$(sum_over_nodes sys_ticks)
rss_idle=$(sum_over_nodes rss_kib)
per_node_rss=$(for pid in "${pids[@]}"; do printf '%s ' "$(rss_kib "$pid")"; done)
sold_at_us=0
if [ -n "$PRODUCTS" ]; then
  # One stock change reaches every shopper's page: an item of product 1 is brought to 150 units
  # (still "medium", nothing is broadcast), then one more sale makes it "low".
  read -r item surplus < <("$S23" inventory --json --node-url "${urls[0]}" | python3 -c '
import json, sys
items = [i for p in json.load(sys.stdin)["products"] if p["id"] == 1 for i in p["items"]]
i = next(i for i in items if i["level"] == "medium")
print(i["id"], i["available_count"] - 150)')
  [ "$surplus" -gt 0 ] && "$S23" sell "$item" --units "$surplus" --node-url "${urls[0]}" >/dev/null
  sold_at_us=$(($(date +%s%N) / 1000))
  "$S23" sell "$item" --node-url "${urls[$((NODES - 1))]}" >/dev/null
fi
[ "$CHURN" != 0 ] && { wait "$probe_pid" || { log "probe failed"; cat "$OUT/probe.err" >&2; }; }
wait "$bench_pid" || { log "shopper-bench failed"; cat "$OUT/bench.err" >&2; exit 1; }

hz=$(getconf CLK_TCK)
python3 - "$OUT" <<EOF | tee "$OUT/result.txt"
import json, sys
b = json.load(open("$OUT/bench.json"))
n = $SHOPPERS
joined = b["shoppers_joined"]
ramp_s = $counted_at - $start
print(f"nodes {$NODES}, shoppers requested {n}, joined {joined}, held at end {b['connections_held_at_end']}, dropped {b['dropped_after_join']}")
print(f"every dashboard counted every shopper {ramp_s:.1f} s after the bench started")
print(f"server RSS before {$rss_before/1024:.1f} MiB, with shoppers {$rss_idle/1024:.1f} MiB (per node KiB: $per_node_rss)")
print(f"server RSS per shopper {($rss_idle - $rss_before) * 1024 / max(joined, 1) / 1024:.2f} KiB")
what = "upgrade + cart join + track + add_item" + (" + product joins $PRODUCTS" if "$PRODUCTS" else "")
print(f"server CPU per shopper ({what}, all nodes) {($cpu_ramped - $cpu_before) / $hz * 1000 / max(joined, 1):.3f} ms, of which kernel {($sys_ramped - $sys_before) / $hz * 1000 / max(joined, 1):.3f} ms")
print(f"load generator CPU per shopper over the ramp {($bench_cpu_ramped - $bench_cpu_before) / $hz * 1000 / max(joined, 1):.3f} ms, of which kernel {($bench_sys_ramped - $bench_sys_before) / $hz * 1000 / max(joined, 1):.3f} ms (same two cores)")
state = "churning at $CHURN operations per minute each" if $CHURN else "idle"
print(f"server CPU while {joined} shoppers {state}: {($cpu_idle_end - $cpu_ramped) / $hz / $window * 100:.2f} % of a core over {$window} s (all nodes), of which kernel {($sys_idle_end - $sys_ramped) / $hz / $window * 100:.2f} %")
sc = b.get("stock_changes") or {"count": 0, "first_unix_us": 0, "last_unix_us": 0}
if "$PRODUCTS":
    print(f"one stock_change (sold on node $NODES): {sc['count']} deliveries (expected {joined}), first after {(sc['first_unix_us'] - $sold_at_us) / 1000:.1f} ms, last after {(sc['last_unix_us'] - $sold_at_us) / 1000:.1f} ms")
c = b["churn"]
if c["count"]:
    print(f"steady-state cart operations: {c['count']}, p50/p90/p99/max {c['p50_ms']:.2f}/{c['p90_ms']:.2f}/{c['p99_ms']:.2f}/{c['max_ms']:.2f} ms (the loaded client)")
    p = json.load(open("$OUT/probe.json"))["churn"]
    print(f"  measured by the light probe: {p['count']}, p50/p90/p99/max {p['p50_ms']:.2f}/{p['p90_ms']:.2f}/{p['p99_ms']:.2f}/{p['max_ms']:.2f} ms")
print(f"bench: joins/s {b['joins_per_second']:.0f}; join p50/p99 {b['join']['p50_ms']:.2f}/{b['join']['p99_ms']:.2f} ms; add_item p50/p99 {b['add_item']['p50_ms']:.2f}/{b['add_item']['p99_ms']:.2f} ms; connect p50/p99 {b['connect']['p50_ms']:.2f}/{b['connect']['p99_ms']:.2f} ms")
print(f"declined by the store {b.get('declined', {})}; errors {b['errors']}; admin check {b.get('admin_check')}")
# The same figures for scripts (scripts/bench-floor.sh): ms per shopper, % of a core, KiB.
ticks = lambda t: t / $hz * 1000 / max(joined, 1)
json.dump({
    "server": "floor" if "$FLOOR" == "1" else "store", "nodes": $NODES, "shoppers": n,
    "joined": joined, "dropped": b["dropped_after_join"], "ramp_asked": $RAMP,
    "joins_per_second": b["joins_per_second"],
    "cpu_per_join_ms": ticks($cpu_ramped - $cpu_before),
    "kernel_per_join_ms": ticks($sys_ramped - $sys_before),
    "idle_cpu_pct": ($cpu_idle_end - $cpu_ramped) / $hz / $window * 100,
    "idle_kernel_pct": ($sys_idle_end - $sys_ramped) / $hz / $window * 100,
    "window_s": $window,
    "rss_per_shopper_kib": ($rss_idle - $rss_before) / max(joined, 1),
    "add_item_p50_ms": b["add_item"]["p50_ms"], "add_item_p99_ms": b["add_item"]["p99_ms"],
    "join_p99_ms": b["join"]["p99_ms"],
    "admin_check_passed": (b.get("admin_check") or {}).get("passed"),
}, open("$OUT/result.json", "w"), indent=1)
EOF
