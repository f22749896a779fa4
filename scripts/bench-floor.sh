#!/usr/bin/env bash
# What a shopper's join costs the store against the floor (issue 17): runs benches/join-floor (the
# least server for the same exchange) and the store, alternately and back to back, under the same
# shopper-bench load (scripts/bench-store.sh with PRODUCTS= : upgrade, cart join, track, one
# add_item, then heartbeats), at each arrival rate asked, for several rounds; then prints, per
# rate, the ranges over the rounds of each server's CPU per join (user and kernel), idle CPU with
# every shopper connected, RSS per shopper, and the ratios store/floor (each round's store run
# against the floor run next to it, so that the machine's drift between rounds cancels out).
#
#   CARGO_INCREMENTAL=0 cargo build --release -p sneakers23 -p shopper-bench -p join-floor
#   bash scripts/bench-floor.sh
#   ROUNDS=1 RATES="1000" SHOPPERS=5000 bash scripts/bench-floor.sh      # a quick look
#
# Settings (environment): ROUNDS (3), RATES ("1000 2000 10000": joins/s asked), SHOPPERS (19000),
# IDLE_SECS (30: one heartbeat per shopper), BIN_DIR (target/release), BASELINE_BIN_DIR (unset:
# when set, a third server — the store built from another tree, e.g. before a change — runs in
# every round too, as "before"), BASE_PORT (6100), OUT (default /tmp/bench-floor-<time>).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
RATES=${RATES:-1000 2000 10000}
SHOPPERS=${SHOPPERS:-19000}
IDLE_SECS=${IDLE_SECS:-30}
BIN_DIR=${BIN_DIR:-target/release}
BASELINE_BIN_DIR=${BASELINE_BIN_DIR:-}
BASE_PORT=${BASE_PORT:-6100}
OUT=${OUT:-/tmp/bench-floor-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
for bin in sneakers23 shopper-bench join-floor; do
  [ -x "$BIN_DIR/$bin" ] || { echo "$BIN_DIR/$bin missing: cargo build --release -p $bin" >&2; exit 2; }
done

servers=(floor store)
[ -n "$BASELINE_BIN_DIR" ] && servers+=(before)
log() { printf '[bench-floor] %s\n' "$*" >&2; }
log "$ROUNDS round(s) of ${servers[*]} at $RATES joins/s asked, $SHOPPERS shoppers; results in $OUT"
run=0
for round in $(seq 1 "$ROUNDS"); do
  order=("${servers[@]}")
  # Every other round the other way round, so that neither always runs first.
  [ $((round % 2)) = 0 ] && order=($(printf '%s\n' "${servers[@]}" | tac))
  for rate in $RATES; do
    for server in "${order[@]}"; do
      run=$((run + 1))
      dir="$OUT/r$round-$rate-$server"
      bin=$BIN_DIR floor=0
      [ "$server" = floor ] && floor=1
      [ "$server" = before ] && bin=$BASELINE_BIN_DIR
      log "round $round, $rate/s, $server"
      # The load generator holds its shoppers 5 s past the idle window, and no longer.
      FLOOR=$floor PRODUCTS= SHOPPERS=$SHOPPERS RAMP=$rate IDLE_SECS=$IDLE_SECS \
        HOLD_SLACK=$((5 - SHOPPERS / rate)) \
        BIN_DIR=$bin BASE_PORT=$((BASE_PORT + 10 * (run % 50))) OUT="$dir" \
        bash scripts/bench-store.sh >"$dir.log" 2>&1 || { log "failed: $dir.log"; tail -5 "$dir.log" >&2; }
    done
  done
done

python3 - "$OUT" "${servers[*]}" "$RATES" <<'EOF' | tee "$OUT/summary.txt"
import glob, json, os, sys
out, servers, rates = sys.argv[1], sys.argv[2].split(), [int(r) for r in sys.argv[3].split()]
runs = {}
for path in glob.glob(os.path.join(out, "r*-*-*/result.json")):
    round_, rate, server = os.path.basename(os.path.dirname(path))[1:].split("-")
    runs[(int(round_), int(rate), server)] = json.load(open(path))
fields = [
    ("joins/s reached", lambda r: r["joins_per_second"], "{:.0f}"),
    ("CPU per join, ms", lambda r: r["cpu_per_join_ms"], "{:.3f}"),
    ("  user", lambda r: r["cpu_per_join_ms"] - r["kernel_per_join_ms"], "{:.3f}"),
    ("  kernel", lambda r: r["kernel_per_join_ms"], "{:.3f}"),
    ("idle CPU, % of a core", lambda r: r["idle_cpu_pct"], "{:.2f}"),
    ("  of which kernel", lambda r: r["idle_kernel_pct"], "{:.2f}"),
    ("RSS per shopper, KiB", lambda r: r["rss_per_shopper_kib"], "{:.2f}"),
    ("add_item p99, ms", lambda r: r["add_item_p99_ms"], "{:.2f}"),
]
ratios = [("CPU per join", lambda r: r["cpu_per_join_ms"]),
          ("  user", lambda r: r["cpu_per_join_ms"] - r["kernel_per_join_ms"]),
          ("  kernel", lambda r: r["kernel_per_join_ms"]),
          ("idle CPU", lambda r: r["idle_cpu_pct"]),
          ("RSS per shopper", lambda r: r["rss_per_shopper_kib"])]
def span(values, fmt):
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"
for rate in rates:
    print(f"\n{rate} joins/s asked, ranges over the rounds")
    print(f"{'':24}" + "".join(f"{s:>18}" for s in servers))
    for name, get, fmt in fields:
        cells = [span([get(r) for (_, ra, s), r in runs.items() if ra == rate and s == server], fmt)
                 for server in servers]
        print(f"{name:24}" + "".join(f"{c:>18}" for c in cells))
    counted = {s: sum(1 for (_, ra, sv), r in runs.items() if ra == rate and sv == s
                      and r["joined"] == r["shoppers"] and r["admin_check_passed"]) for s in servers}
    total = {s: sum(1 for (_, ra, sv) in runs if ra == rate and sv == s) for s in servers}
    print(f"{'runs all joined+counted':24}" + "".join(f"{f'{counted[s]}/{total[s]}':>18}" for s in servers))
    for other in [s for s in servers if s != "floor"]:
        for name, get in ratios:
            values = [get(runs[(rd, rate, other)]) / get(runs[(rd, rate, "floor")])
                      for (rd, ra, s) in runs if ra == rate and s == "floor"
                      and (rd, rate, other) in runs and get(runs[(rd, rate, "floor")]) > 0]
            print(f"{other}/floor {name:17}" + f"{span(values, '{:.2f}'):>18}")
EOF
