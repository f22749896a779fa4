#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of every decoder that reads bytes from outside a
# node; the targets are in fuzz/fuzz_targets, their committed seeds in fuzz/seeds (docs/FUZZING.md).
#
#   scripts/fuzz.sh                      short run of every target (what scripts/test.sh does)
#   scripts/fuzz.sh smoke [target...]    the same, for some targets
#   scripts/fuzz.sh long RUNS [target...]  RUNS inputs per target, corpus kept in fuzz/corpus/
#
# Needs a nightly toolchain (the workspace itself stays on stable); without one, or when cargo-fuzz
# cannot be installed, it says so and skips (exit 0). A crash, a leak, an allocation over
# MALLOC_LIMIT_MB or an RSS over RSS_LIMIT_MB fails the run; libFuzzer writes the input to
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[fuzz] %s\n' "$*"; }

mode=${1:-smoke}
[ $# -gt 0 ] && shift
runs=20000
max_time=10
if [ "$mode" = long ]; then
  runs=${1:?usage: scripts/fuzz.sh long RUNS [target...]}
  shift
  max_time=0
elif [ "$mode" != smoke ]; then
  echo "usage: scripts/fuzz.sh [smoke [target...] | long RUNS [target...]]" >&2
  exit 2
fi

RSS_LIMIT_MB=${RSS_LIMIT_MB:-2048}
MALLOC_LIMIT_MB=${MALLOC_LIMIT_MB:-256}
MAX_LEN=${MAX_LEN:-4096}
# address (the default) or none: long runs use none for rate; the targets' allocator still aborts
# on any single allocation over 256 MiB (fuzz/src/lib.rs, CappedAlloc).
SANITIZER=${SANITIZER:-address}

if ! command -v rustup >/dev/null 2>&1 || ! rustup toolchain list | grep -q nightly; then
  log "SKIPPED: no nightly toolchain (rustup toolchain install nightly to fuzz)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  if ! cargo +nightly install cargo-fuzz --locked >/tmp/fuzz-install.log 2>&1; then
    tail -n 20 /tmp/fuzz-install.log >&2
    log "SKIPPED: cargo-fuzz could not be installed"
    exit 0
  fi
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi

log "building ${#targets[@]} targets (nightly, release with debug assertions, sanitizer: $SANITIZER)"
start=$SECONDS
nice -n 10 cargo +nightly fuzz build --fuzz-dir fuzz -s "$SANITIZER"
log "built in $((SECONDS - start)) s"

for target in "${targets[@]}"; do
  if [ "$mode" = long ]; then
    corpus=fuzz/corpus/$target
    mkdir -p "$corpus"
  else
    corpus=$(mktemp -d)
  fi
  log "$target: $runs runs"
  start=$SECONDS
  if [ "$mode" = long ]; then out=fuzz/corpus/$target.log; else out=$(mktemp); fi
  if nice -n 10 cargo +nightly fuzz run --fuzz-dir fuzz -s "$SANITIZER" "$target" "$corpus" "fuzz/seeds/$target" -- \
    -runs="$runs" -max_total_time="$max_time" -max_len="$MAX_LEN" \
    -rss_limit_mb="$RSS_LIMIT_MB" -malloc_limit_mb="$MALLOC_LIMIT_MB" \
    -timeout=10 -print_final_stats=1 >"$out" 2>&1; then
    status=0
  else
    status=$?
  fi
  if [ "$mode" = smoke ]; then rm -rf "$corpus"; fi
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$out" >&2
    log "$target FAILED (exit $status); the input is in fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$out" || true
  if [ "$mode" = smoke ]; then rm -f "$out"; fi
  log "$target: ok in $((SECONDS - start)) s"
done
