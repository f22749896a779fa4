// Helpers of the browser suites: a store node with its operator CLI, and the shop page actions
// a shopper performs (open the shop, add or remove a size, wait for the cart panel).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { binary, startServer } from "./support.mjs";

const run = promisify(execFile);

/** The store binary under test. */
export const bin = process.env.SNEAKERS23_BIN || binary("sneakers23");
/** The secret every node and CLI call of the suites shares. */
export const SECRET = "browser suite secret key base, long enough for every signer of the store";
/** Default wait for page conditions. */
export const WAIT = { timeout: 10000 };
/** Chromium flags for headless runs in CI. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * A fresh node on a free port over a new SQLite file seeded with the book's two shoes, with the
 * CLI bound to it: `{url, port, cli(...args), inventory(), stop(), cleanup()}`.
 */
export async function startStore(extraEnv = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "s23-browser-"));
  const env = {
    PORT: "0",
    DATABASE_URL: `sqlite://${dir}/store.db`,
    SECRET_KEY_BASE: SECRET,
    SECRET_KEY_FILE: path.join(dir, "secret"),
    RUST_LOG: process.env.RUST_LOG || "warn",
    ...extraEnv,
  };
  const server = await startServer(bin, ["serve"], { env });
  const node = {
    ...server,
    dir,
    async cli(...args) {
      const { stdout } = await run(bin, [...args, "--node-url", server.url], {
        env: { ...process.env, SECRET_KEY_BASE: SECRET },
      });
      return stdout;
    },
    async inventory() {
      return JSON.parse(await node.cli("inventory", "--json")).products;
    },
    async cleanup() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return node;
}

/** The item ids in the cart panel of `page`, ascending. */
export const cartItems = (page) =>
  page.$$eval("#cart-container .cart-item", (rows) =>
    rows.map((r) => Number(r.dataset.cartItemId)).sort((a, b) => a - b),
  );

/** Waits until the cart panel of `page` shows exactly `ids` (empty: no panel). */
export async function waitForCart(page, ids) {
  const want = [...ids].sort((a, b) => a - b);
  await page.waitForFunction(
    (want) => {
      const rows = [...document.querySelectorAll("#cart-container .cart-item")];
      const got = rows.map((r) => Number(r.dataset.cartItemId)).sort((a, b) => a - b);
      const panel = document.querySelector("#cart-container .cart");
      return JSON.stringify(got) === JSON.stringify(want) && (want.length > 0) === !!panel;
    },
    want,
    WAIT,
  );
  assert.deepEqual(await cartItems(page), want);
}

/** Opens `url` and waits until its cart and product channels are joined. */
export async function openShop(page, url) {
  await page.goto(url);
  await page.waitForSelector("#cart-container[data-live]", { state: "attached", ...WAIT });
  const listings = await page.$$(".product-listing[data-product-id]");
  for (const listing of listings) {
    await listing.waitForSelector("xpath=self::*[@data-live]", { state: "attached", ...WAIT });
  }
}

/** Clicks the size button of `itemId`. */
export async function addSize(page, itemId) {
  await page.click(`.size-container__entry[value="${itemId}"]`);
}

/** Clicks the remove control of `itemId` in the cart panel. */
export async function removeItem(page, itemId) {
  await page.click(`#cart-container .cart-item__remove[data-item-id="${itemId}"]`);
}
