#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs and starts what it needs, then runs the Rust
# tests (unit, property, integration, multi-process) and the JavaScript suites (official phoenix
# client, headless Chromium) against the real binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== cargo build"
cargo build --workspace --all-targets --locked

echo "== cargo test"
cargo test --workspace --locked

echo "== rustdoc of the library crates (warnings are errors; broker adapters included)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked \
  -p phoenix-channels-protocol -p phoenix-channels-server -p phoenix-pubsub -p phoenix-tracker -p http-client -p test-support -p sneakers23-core \
  --features phoenix-pubsub/redis,phoenix-pubsub/nats

echo "== cargo package: each library crate alone (resolves against the crates.io index)"
for crate in phoenix-pubsub phoenix-tracker phoenix-channels-protocol phoenix-channels-server; do
  cargo package -p "$crate" --no-verify --allow-dirty --quiet
done

echo "== fuzz: a short run of each target (skipped without a nightly toolchain)"
bash scripts/fuzz.sh

if [ -f tests/js/package.json ]; then
  echo "== javascript suites (debug binaries built above)"
  (cd tests/js && node --test --test-concurrency=1 ./*.test.mjs)
fi
