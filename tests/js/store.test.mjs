// Browser acceptance suite of the store (spec §18.2 A1–A3, §18.4 S1, §19.8): headless Chromium
// driven by playwright-core against the real `sneakers23` binary. Operator actions (release,
// sell) go through the CLI and the node's control API, as an operator would do them.
//
// Every test starts its own node on a fresh SQLite file seeded with the book's two shoes. Waits
// are on page conditions, never fixed sleeps.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import {
  CHROMIUM_ARGS,
  WAIT,
  addSize,
  cartItems,
  openShop,
  removeItem,
  startStore as startNode,
  waitForCart,
} from "./shop.mjs";

let browser;
const nodes = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  for (const node of nodes) {
    await node.stop();
    rmSync(node.dir, { recursive: true, force: true });
  }
});

/** A fresh node on a free port over a new SQLite file, with the CLI bound to it. */
async function startStore() {
  const node = await startNode();
  nodes.push(node);
  return node;
}

/** The id of an item of `product` that is in stock, preferring `size`. */
function pickItem(product, size, exclude = []) {
  const available = product.items.filter(
    (i) => i.available_count > 0 && !exclude.includes(i.id),
  );
  const preferred = available.find((i) => i.size === size);
  const item = preferred || available[0];
  assert.ok(item, `an available size of ${product.name}`);
  return item.id;
}

test("A1: the home page loads with the title Sneakers23", async () => {
  const node = await startStore();
  const context = await browser.newContext();
  const page = await context.newPage();
  const response = await page.goto(node.url);
  assert.equal(response.status(), 200);
  assert.equal(await page.title(), "Sneakers23");
  assert.equal(response.headers()["cache-control"], "no-store, must-revalidate");
  await context.close();
});

test("A2: releasing the second product shows its sizes live, the first stays coming soon", async () => {
  const node = await startStore();
  const context = await browser.newContext();
  const page = await context.newPage();
  await openShop(page, node.url);
  assert.equal((await page.textContent(".product-soon-1")).trim(), "coming soon...");
  assert.equal((await page.textContent(".product-soon-2")).trim(), "coming soon...");

  await node.cli("release", "2");

  await page.waitForSelector('.product-listing[data-product-id="2"] .size-container', WAIT);
  assert.equal(await page.$(".product-soon-2"), null);
  assert.equal((await page.textContent(".product-soon-1")).trim(), "coming soon...");
  assert.equal(await page.$('.product-listing[data-product-id="1"] .size-container'), null);
  assert.equal(await page.$$eval(".size-container__entry", (b) => b.length), 13);
  await context.close();
});

test("A3: stock levels change live, from low to out", async () => {
  const node = await startStore();
  await node.cli("release", "1");
  const [product] = await node.inventory();
  const itemId = pickItem(product, "6");
  await node.cli("sell", String(itemId), "--leave", "1");

  const context = await browser.newContext();
  const page = await context.newPage();
  await openShop(page, node.url);
  const button = `.size-container__entry[value="${itemId}"]`;
  assert.ok(await page.$eval(button, (b) => b.classList.contains("size-container__entry--level-low")));
  assert.equal(await page.$eval(button, (b) => b.disabled), false);

  await node.cli("sell", String(itemId));

  await page.waitForSelector(`${button}.size-container__entry--level-out`, WAIT);
  assert.equal(
    await page.$eval(button, (b) => b.classList.contains("size-container__entry--level-low")),
    false,
  );
  assert.equal(await page.$eval(button, (b) => b.disabled), true);
  await context.close();
});

test("S1: one cart across reloads and tabs, then checkout empties every tab", async () => {
  const node = await startStore();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const tab1 = await context.newPage();

  // Fresh seed: no cart, both products coming soon.
  await openShop(tab1, node.url);
  assert.equal(await tab1.$("#cart-container .cart"), null);
  assert.equal(await tab1.$$eval(".product-soon", (e) => e.length), 2);

  // Release both: the size selectors appear.
  await node.cli("release", "1");
  await node.cli("release", "2");
  await tab1.waitForFunction(
    () => document.querySelectorAll(".size-container").length === 2,
    null,
    WAIT,
  );
  const [top, bottom] = await node.inventory();

  // Size 6 of the top shoe and size 10 of the bottom one: two items; remove the size 10.
  const top6 = pickItem(top, "6");
  const bottom10 = pickItem(bottom, "10");
  await addSize(tab1, top6);
  await waitForCart(tab1, [top6]);
  await addSize(tab1, bottom10);
  await waitForCart(tab1, [top6, bottom10]);
  assert.match(await tab1.textContent("#cart-container .cart__header"), /Cart\s*2/);
  await removeItem(tab1, bottom10);
  await waitForCart(tab1, [top6]);

  // Navigate away and come back: the cart is still there.
  await tab1.goto("about:blank");
  await openShop(tab1, node.url);
  await waitForCart(tab1, [top6]);

  // A second tab shows the same cart.
  const tab2 = await context.newPage();
  await openShop(tab2, node.url);
  await waitForCart(tab2, [top6]);

  // Removing everything from the second tab empties both.
  await removeItem(tab2, top6);
  await waitForCart(tab2, []);
  await waitForCart(tab1, []);

  // Four shoes from the first tab, two sizes of each; the second tab follows.
  const four = [];
  for (const product of [top, bottom]) {
    for (let n = 0; n < 2; n++) four.push(pickItem(product, null, four));
  }
  for (const id of four) {
    await addSize(tab1, id);
    await waitForCart(tab1, four.slice(0, four.indexOf(id) + 1));
  }
  await waitForCart(tab2, four);
  const subtotal = four
    .map((id) => [top, bottom].find((p) => p.items.some((i) => i.id === id)))
    .map((p) => (p.id === 1 ? 120 : 140))
    .reduce((a, b) => a + b, 0);
  assert.match(await tab1.textContent("#cart-container .cart__subtotal"), new RegExp(`\\$${subtotal}`));
  if (process.env.SCREENSHOT_DIR) {
    mkdirSync(process.env.SCREENSHOT_DIR, { recursive: true });
    await tab1.screenshot({ path: path.join(process.env.SCREENSHOT_DIR, "product-page-cart.png") });
  }

  // CHECKOUT lists the four shoes.
  await Promise.all([tab1.waitForURL(/\/checkout\?serialized_cart=/, WAIT), tab1.click(".cart__checkout")]);
  const listed = await tab1.$$eval(".checkout .product-listing[data-item-id]", (rows) =>
    rows.map((r) => Number(r.dataset.itemId)).sort((a, b) => a - b),
  );
  assert.deepEqual(listed, [...four].sort((a, b) => a - b));
  assert.equal((await tab1.textContent(".checkout__purchase")).trim(), "PURCHASE");
  if (process.env.SCREENSHOT_DIR) {
    await tab1.screenshot({ path: path.join(process.env.SCREENSHOT_DIR, "checkout.png"), fullPage: true });
  }

  // Purchase: the order completes and the other tab's cart empties (§19.8).
  await Promise.all([tab1.waitForURL(/\/checkout\/complete\?order=/, WAIT), tab1.click(".checkout__purchase")]);
  assert.match(await tab1.textContent("h1"), /Order Complete!/);
  await waitForCart(tab2, []);
  await waitForCart(tab1, []);
  const after = await node.inventory();
  for (const id of four) {
    const before = [top, bottom].flatMap((p) => p.items).find((i) => i.id === id);
    const now = after.flatMap((p) => p.items).find((i) => i.id === id);
    assert.equal(now.available_count, before.available_count - 1, `item ${id} sold once`);
  }
  await context.close();
});

test("a sold-out item greys out in the cart of every tab and cannot be added again", async () => {
  const node = await startStore();
  await node.cli("release", "1");
  const [product] = await node.inventory();
  const itemId = pickItem(product, "6");
  await node.cli("sell", String(itemId), "--leave", "1");
  const context = await browser.newContext();
  const tab1 = await context.newPage();
  await openShop(tab1, node.url);
  await addSize(tab1, itemId);
  await waitForCart(tab1, [itemId]);
  const tab2 = await context.newPage();
  await openShop(tab2, node.url);
  await waitForCart(tab2, [itemId]);

  await node.cli("sell", String(itemId));

  for (const tab of [tab1, tab2]) {
    await tab.waitForSelector(`#cart-container .cart-item-out[data-cart-item-id="${itemId}"]`, WAIT);
    assert.equal(await tab.$eval(`.size-container__entry[value="${itemId}"]`, (b) => b.disabled), true);
  }
  await context.close();
});
