// The book's two-node cart scenario S2 (spec §18.4) in headless Chromium: node "app" serves the
// browser, node "backend" takes every operator command; they share one PostgreSQL database (a
// fresh one per run) and talk through a broker (PUBSUB_URL): the scenario runs once over Redis and
// once over NATS.
//
// Release and sell-out happen on the node the browser is not on, so everything the tabs see —
// size selectors after the release, carts greyed out after the reducer, disabled sold-out sizes —
// crossed the broker: inventory replication into app's cache, `stock_change` broadcasts, and the
// node-local `item_out` app emits once its cache shows the sell-out.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import {
  CHROMIUM_ARGS,
  WAIT,
  addSize,
  bin,
  openShop,
  removeItem,
  startStore,
  waitForCart,
} from "./shop.mjs";

const run = promisify(execFile);
const PG = process.env.S2_PG_URL || "postgres://postgres@127.0.0.1:5432";
const BROKERS = {
  redis: process.env.REDIS_URL || "redis://127.0.0.1:6379",
  nats: process.env.NATS_URL || "nats://127.0.0.1:4222",
};

let browser;
const nodes = [];
const databases = [];

async function psql(sql, database = "postgres") {
  const url = new URL(PG);
  await run("psql", [
    "-h", url.hostname, "-p", url.port || "5432", "-U", url.username || "postgres",
    "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql,
  ]);
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  for (const node of nodes) await node.cleanup();
  for (const db of databases) {
    await psql(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
  }
});

/** A fresh database and cluster name over `broker`: `{databaseUrl, pubsubUrl, database}`. */
async function freshCluster(broker) {
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e9).toString(36)}`;
  const database = `s23_s2_${suffix}`;
  await psql(`CREATE DATABASE ${database}`);
  databases.push(database);
  return {
    database,
    databaseUrl: `${PG}/${database}`,
    pubsubUrl: `${BROKERS[broker]}/?cluster=s2-${suffix}`,
  };
}

/** A node of `cluster`: shared database and broker, its own name. */
async function startNode(cluster, name) {
  const node = await startStore({
    DATABASE_URL: cluster.databaseUrl,
    NODE_NAME: name,
    PUBSUB_URL: cluster.pubsubUrl,
    SEED_IF_EMPTY: "false",
    TRACKER_BROADCAST_PERIOD_MS: "200",
    RUST_LOG: process.env.RUST_LOG || "warn",
  });
  nodes.push(node);
  return node;
}

/** Waits until every product listing of `page` shows its sizes. */
async function waitForSelectors(page) {
  await page.waitForFunction(
    () => document.querySelectorAll(".size-container").length === 2,
    null,
    WAIT,
  );
}

for (const broker of Object.keys(BROKERS)) {
  test(`S2 over ${broker}: two nodes, commands on backend only; carts grey out in both tabs, sold-out sizes cannot be added`, () =>
    scenarioS2(broker));
}

async function scenarioS2(broker) {
  const cluster = await freshCluster(broker);
  // Seed, with little stock so that the reducer sells out in a few ticks.
  const db = { ...process.env, DATABASE_URL: cluster.databaseUrl };
  await run(bin, ["seed", "--rng-seed", "23"], { env: db });
  await psql(
    "UPDATE item_availabilities SET available_count = 3 WHERE available_count > 3",
    cluster.database,
  );
  const app = await startNode(cluster, "app");
  const backend = await startNode(cluster, "backend");

  // Release both from backend: app's page (loaded afterwards) shows both selectors.
  await backend.cli("release", "1");
  await backend.cli("release", "2");
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const tab1 = await context.newPage();
  const deadline = Date.now() + WAIT.timeout;
  for (;;) {
    await openShop(tab1, app.url);
    if ((await tab1.$$(".size-container")).length === 2) break;
    assert.ok(Date.now() < deadline, "app's cache shows the releases replicated from backend");
    await tab1.waitForTimeout(50);
  }
  await waitForSelectors(tab1);

  // Size 6 of the top shoe: add, remove, add again.
  const [top, bottom] = await backend.inventory();
  const inStock = (product) => product.items.filter((i) => i.available_count > 0);
  const top6 = (inStock(top).find((i) => i.size === "6") || inStock(top)[0]).id;
  await addSize(tab1, top6);
  await waitForCart(tab1, [top6]);
  await removeItem(tab1, top6);
  await waitForCart(tab1, []);
  await addSize(tab1, top6);
  await waitForCart(tab1, [top6]);

  // A second tab shows the cart; a shoe added from it appears in both.
  const tab2 = await context.newPage();
  await openShop(tab2, app.url);
  await waitForCart(tab2, [top6]);
  const other = inStock(bottom)[0].id;
  await addSize(tab2, other);
  await waitForCart(tab2, [top6, other]);
  await waitForCart(tab1, [top6, other]);

  // The reducer on backend sells everything; it runs without error.
  const sold = await backend.cli("sell-random-until-gone", "--per-tick", "50", "--tick-ms", "50", "--wait");
  assert.match(sold, /sold out!/);

  // Every cart item greys out in both tabs, and every size button is disabled.
  for (const tab of [tab1, tab2]) {
    for (const id of [top6, other]) {
      await tab.waitForSelector(`#cart-container .cart-item-out[data-cart-item-id="${id}"]`, WAIT);
    }
    await tab.waitForFunction(
      () => {
        const buttons = [...document.querySelectorAll(".size-container__entry")];
        return buttons.length > 0 && buttons.every((b) => b.disabled);
      },
      null,
      WAIT,
    );
  }

  // Items can be removed; the carts of both tabs empty.
  await removeItem(tab1, top6);
  await waitForCart(tab1, [other]);
  await removeItem(tab2, other);
  await waitForCart(tab2, []);
  await waitForCart(tab1, []);

  // A sold-out shoe cannot be added: its button is disabled and clicking does nothing.
  const button = `.size-container__entry[value="${top6}"]`;
  assert.equal(await tab1.$eval(button, (b) => b.disabled), true);
  await tab1.click(button, { force: true });
  await tab1.waitForTimeout(300);
  assert.equal(await tab1.$("#cart-container .cart"), null, "nothing was added");

  // The page on app after a refresh shows the sell-out too (app's cache, not just live events).
  await openShop(tab1, app.url);
  assert.equal(
    await tab1.$$eval(".size-container__entry", (bs) => bs.every((b) => b.disabled)),
    true,
  );
  const counts = (await app.inventory()).flatMap((p) => p.items.map((i) => i.available_count));
  assert.ok(counts.every((c) => c === 0), `app's cache: ${counts}`);
  await context.close();
}
