// A small shopper-bench run against the real store: every shopper joins, every add_item is
// answered, and the node's CartTracker (what the dashboard reads) counts every one of them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { binary, until } from "./support.mjs";
import { startStore } from "./shop.mjs";

const benchBin = process.env.SHOPPER_BENCH_BIN || binary("shopper-bench");
const SHOPPERS = 500;

function runBench(url) {
  return new Promise((resolve) => {
    const child = spawn(
      benchBin,
      ["--url", url, "-n", String(SHOPPERS), "--ramp-rate", "500", "--hold-secs", "10", "--strict", "--json"],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_BACKTRACE: "0" } },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

test(`${SHOPPERS} bench shoppers all join, get answers and are tracked`, { timeout: 180000 }, async () => {
  const node = await startStore();
  try {
    await node.cli("release", "1");
    await node.cli("release", "2");
    const finished = runBench(node.url);
    await until(
      async () => Object.keys(JSON.parse(await node.cli("presence", "list"))).length === SHOPPERS,
      `the CartTracker lists ${SHOPPERS} carts`,
      120000,
    );
    const presence = JSON.parse(await node.cli("presence", "list"));
    const pages = new Set();
    for (const { metas } of Object.values(presence)) {
      assert.equal(metas.length, 1);
      pages.add(metas[0].page);
    }
    assert.deepEqual([...pages].sort(), ["/bench/1", "/bench/2", "/bench/3", "/bench/4"]);
    const { code, stdout, stderr } = await finished;
    assert.equal(code, 0, `shopper-bench failed:\n${stdout}\n${stderr}`);
    const summary = JSON.parse(stdout);
    assert.equal(summary.shoppers_joined, SHOPPERS);
    assert.equal(summary.add_item_answered, SHOPPERS);
    assert.equal(summary.dropped_after_join, 0);
    await until(
      async () => Object.keys(JSON.parse(await node.cli("presence", "list"))).length === 0,
      "every cart left when the bench disconnected",
      60000,
    );
  } finally {
    await node.cleanup();
  }
});
