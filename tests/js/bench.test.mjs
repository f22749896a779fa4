// A small shopper-bench run against the real store: every shopper joins, every add_item is
// answered, the node's CartTracker counts every one of them, and so does the admin dashboard's
// aggregate, which the bench itself checks (`--check-admin <node>/admin/aggregate.json`) after
// its hold, while its shoppers are still connected.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { binary, until } from "./support.mjs";
import { startStore } from "./shop.mjs";

const benchBin = process.env.SHOPPER_BENCH_BIN || binary("shopper-bench");
const SHOPPERS = 500;
// Not the development defaults, so that the bench is seen to pass the ones it is given.
const ADMIN = { user: "bench-admin", password: "bench admin password" };

/** Runs the bench against `url`, checking its dashboard with `password`; `{code, stdout, stderr}`. */
function runBench(url, { shoppers = SHOPPERS, holdSecs = 10, password = ADMIN.password } = {}) {
  return new Promise((resolve) => {
    const args = ["--url", url, "-n", String(shoppers), "--ramp-rate", "500"];
    args.push("--hold-secs", String(holdSecs));
    args.push("--check-admin", `${url}/admin/aggregate.json`);
    args.push("--admin-user", ADMIN.user, "--admin-password", password);
    args.push("--strict", "--json");
    const env = { ...process.env, RUST_BACKTRACE: "0" };
    delete env.ADMIN_USER;
    delete env.ADMIN_PASSWORD;
    const child = spawn(benchBin, args, { stdio: ["ignore", "pipe", "pipe"], env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

test(`${SHOPPERS} bench shoppers all join, get answers and are tracked`, { timeout: 180000 }, async () => {
  const node = await startStore({ ADMIN_USER: ADMIN.user, ADMIN_PASSWORD: ADMIN.password });
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
    // The dashboard's aggregate counted them all, while they were connected.
    const check = summary.admin_check;
    assert.ok(check, `no admin_check in the bench's JSON:\n${stdout}`);
    assert.equal(check.passed, true, JSON.stringify(check));
    assert.equal(check.expected_shoppers, SHOPPERS);
    assert.equal(check.nodes.length, 1);
    assert.equal(check.nodes[0].url, `${node.url}/admin/aggregate.json`);
    assert.equal(check.nodes[0].passed, true);
    assert.equal(check.nodes[0].shoppers, SHOPPERS);
    await until(
      async () => Object.keys(JSON.parse(await node.cli("presence", "list"))).length === 0,
      "every cart left when the bench disconnected",
      60000,
    );
  } finally {
    await node.cleanup();
  }
});

test("the bench's admin check fails clearly on refused credentials", { timeout: 60000 }, async () => {
  const node = await startStore({ ADMIN_USER: ADMIN.user, ADMIN_PASSWORD: ADMIN.password });
  try {
    const url = `${node.url}/admin/aggregate.json`;
    const { code, stdout, stderr } = await runBench(node.url, {
      shoppers: 5,
      holdSecs: 0,
      password: "wrong",
    });
    assert.equal(code, 1, `shopper-bench should fail:\n${stdout}\n${stderr}`);
    // stdout stays one JSON document, with the failed check in it.
    const check = JSON.parse(stdout).admin_check;
    assert.equal(check.passed, false);
    assert.equal(check.nodes[0].url, url);
    assert.equal(check.nodes[0].shoppers, null);
    assert.match(stderr, new RegExp(`${url}: HTTP 401`));
    assert.match(stderr, /--admin-password/);
  } finally {
    await node.cleanup();
  }
});
