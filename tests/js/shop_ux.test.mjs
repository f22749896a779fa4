// The shop as a shopper meets it when things go wrong, and without a mouse: refused cart
// operations and a lost connection are shown on the page, the checkout page never disagrees with
// the cart, unknown addresses get a real 404 page, and a purchase can be made with the keyboard
// alone. Headless Chromium driven by playwright-core against the real `sneakers23` binary; every
// wait is on a page condition.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, WAIT, addSize, openShop, removeItem, startStore, waitForCart } from "./shop.mjs";

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
  for (const node of nodes) await node.cleanup();
});

/** A fresh node with both shoes released. */
async function releasedStore(env = {}) {
  const node = await startStore(env);
  nodes.push(node);
  await node.cli("release", "1");
  await node.cli("release", "2");
  return node;
}

/** In-stock item ids of the first product. */
async function inStock(node, count) {
  const [product] = await node.inventory();
  const ids = product.items.filter((i) => i.available_count > 1).map((i) => i.id);
  assert.ok(ids.length >= count, `${count} sizes in stock`);
  return ids.slice(0, count);
}

/** A new page that fails the test on any console error or log line. */
async function quietPage(context) {
  const page = await context.newPage();
  const noise = [];
  page.on("console", (message) => noise.push(`${message.type()}: ${message.text()}`));
  page.noise = noise;
  return page;
}

test("a refused add is shown on the page, and no cart update is logged", async () => {
  const node = await releasedStore({ MAX_CART_ITEMS: "2" });
  const [a, b, c] = await inStock(node, 3);
  const context = await browser.newContext();
  const page = await quietPage(context);
  await openShop(page, node.url);
  await addSize(page, a);
  await waitForCart(page, [a]);
  await addSize(page, b);
  await waitForCart(page, [a, b]);
  assert.equal(await page.isVisible("#shop-error"), false, "no error before one happens");

  await addSize(page, c); // a third item in a cart of at most two
  await page.waitForSelector("#shop-error:not([hidden])", WAIT);
  assert.match(await page.textContent("#shop-error"), /cart is full/);
  assert.equal(await page.getAttribute("#shop-error", "role"), "alert");

  await addSize(page, a); // already in the cart
  await page.waitForFunction(() => /already in your cart/.test(document.querySelector("#shop-error").textContent), null, WAIT);

  // The size buttons say which sizes are in the cart, and the live region said the cart changed.
  assert.equal(await page.getAttribute(`.size-container__entry[value="${a}"]`, "aria-pressed"), "true");
  assert.match(await page.getAttribute(`.size-container__entry[value="${a}"]`, "aria-label"), /size .*in your cart/);
  assert.equal(await page.getAttribute(`.size-container__entry[value="${c}"]`, "aria-pressed"), "false");
  assert.match(await page.textContent("#shop-announcer"), /Cart: 2 items/);
  assert.deepEqual(page.noise, [], "the console stays quiet");
  await context.close();
});

test("a lost connection shows the offline banner, and clicks while offline say why nothing happens", async () => {
  const node = await releasedStore();
  const [a, b] = await inStock(node, 2);
  const context = await browser.newContext();
  const page = await context.newPage();
  await openShop(page, node.url);
  await addSize(page, a);
  await waitForCart(page, [a]);
  assert.equal(await page.isVisible("#connection-banner"), false, "online: no banner");

  await node.stop();
  await page.waitForSelector("#connection-banner:not([hidden])", WAIT);
  assert.match(await page.textContent("#connection-banner"), /offline/i);
  await addSize(page, b);
  await page.waitForSelector("#shop-error:not([hidden])", WAIT);
  assert.match(await page.textContent("#shop-error"), /offline/i);
  await waitForCart(page, [a]);
  await context.close();
});

test("the checkout page follows the cart: removing a sold-out item updates the page and its total", async () => {
  const node = await releasedStore();
  const [a, b] = await inStock(node, 2);
  const context = await browser.newContext();
  const page = await context.newPage();
  await openShop(page, node.url);
  const price = Number((await page.textContent(".product-listing[data-product-id] .product-listing__price")).replace(/[^0-9]/g, ""));
  assert.ok(price > 0, "the shoe has a price");
  await addSize(page, a);
  await addSize(page, b);
  await waitForCart(page, [a, b]);
  await node.cli("sell", String(b), "--leave", "0");
  await page.waitForSelector(`#cart-container .cart-item-out[data-cart-item-id="${b}"]`, WAIT);
  // The subtotal counts only what can be bought.
  assert.match(await page.textContent("#cart-container .cart__subtotal"), new RegExp(`\\$${price}\\b`));
  assert.match(await page.textContent("#cart-container .cart__note"), /1 sold-out item not counted/);

  await Promise.all([page.waitForURL(/\/checkout\?serialized_cart=/, WAIT), page.click(".cart__checkout")]);
  await page.waitForSelector("#cart-container[data-live]", { state: "attached", ...WAIT });
  assert.equal(await page.$$eval(".checkout .product-listing[data-item-id]", (rows) => rows.length), 2);
  assert.equal(await page.$(".cart__checkout"), null, "one way to check out on the checkout page: PURCHASE");
  assert.match(await page.textContent(".checkout__payment"), new RegExp(`\\$${2 * price}\\b`));

  await removeItem(page, b);
  await page.waitForFunction(
    (a) => {
      const rows = [...document.querySelectorAll(".checkout .product-listing[data-item-id]")];
      return rows.length === 1 && rows[0].dataset.itemId === String(a);
    },
    a,
    WAIT,
  );
  await page.waitForSelector("#cart-container[data-live]", { state: "attached", ...WAIT });
  await waitForCart(page, [a]);
  assert.match(await page.textContent(".checkout__payment"), new RegExp(`\\$${price}\\b`));
  assert.equal((await page.textContent(".checkout__purchase")).trim(), "PURCHASE");
  await context.close();
});

test("an unknown address gets a 404 page that leads back to the shop", async () => {
  const node = await releasedStore();
  const page = await browser.newPage();
  const response = await page.goto(`${node.url}/shoes/nope`);
  assert.equal(response.status(), 404);
  assert.equal((await page.textContent("h1")).trim(), "Page not found");
  await Promise.all([page.waitForURL(`${node.url}/`, WAIT), page.click("main a[href='/']")]);
  assert.equal(await page.$$eval(".product-listing", (l) => l.length), 2);
  await page.close();
});

/** Presses Tab until the focused element matches `selector`; returns how many presses. */
async function tabTo(page, selector, most = 80) {
  for (let n = 1; n <= most; n++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return n;
  }
  assert.fail(`Tab never reached ${selector}`);
}

test("a purchase with the keyboard alone, focus always visible", async () => {
  const node = await releasedStore();
  const [a] = await inStock(node, 1);
  const count = async () => (await node.inventory())[0].items.find((i) => i.id === a).available_count;
  const stock = await count();
  const context = await browser.newContext();
  const page = await context.newPage();
  await openShop(page, node.url);
  assert.equal(await page.$$eval("h1", (h) => h.length), 1, "one h1");

  await tabTo(page, `.size-container__entry[value="${a}"]`);
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none", "the focused size is outlined");
  await page.keyboard.press("Enter");
  await waitForCart(page, [a]);

  await tabTo(page, ".cart__checkout");
  await Promise.all([page.waitForURL(/\/checkout\?serialized_cart=/, WAIT), page.keyboard.press("Enter")]);
  await tabTo(page, ".checkout__purchase");
  await Promise.all([page.waitForURL(/\/checkout\/complete\?order=/, WAIT), page.keyboard.press("Enter")]);
  assert.equal(await count(), stock - 1, "one unit sold");
  await context.close();
});
