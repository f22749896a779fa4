// Browser suite of the admin dashboard (spec §14, §18 "dashboard manual test" §14.6, §19.6, §19.9):
// headless Chromium against the real `sneakers23` binary. An admin signs in on /admin with HTTP
// Basic credentials; shoppers open the store in two browser contexts (two tabs sharing one cart,
// and a separate shopper) on different pages, add and remove sizes, close tabs; after every step
// the dashboard must show the right unique shoppers, page tiles and per-item cart counts, live.
// Releases and sales made through the operator CLI reach the dashboard live too.
//
// Waits are on DOM conditions, never fixed sleeps. Set DASHBOARD_SCREENSHOT=<file.png> to keep a
// screenshot of the dashboard at the end.
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

/** What the dashboard shows: shopper count, page tiles in order, non-zero item counters. */
function readDashboard() {
  const number = (text) => Number(String(text).replace(/[^0-9]/g, ""));
  const items = {};
  for (const counter of document.querySelectorAll(".admin-item-cart-count")) {
    const n = number(counter.textContent);
    if (n !== 0) items[counter.id.replace("admin-item-cart-count-", "")] = n;
  }
  return {
    status: document.querySelector("#connection-status")?.textContent,
    shoppers: document.querySelector("#shopper-count")?.textContent,
    pages: [...document.querySelectorAll("#shoppers-by-page .tile")].map((tile) => [
      tile.querySelector(".tile__label").textContent,
      number(tile.querySelector(".tile__count").textContent),
    ]),
    items,
  };
}

/**
 * Waits until the dashboard shows `shoppers` unique shoppers, exactly the page tiles `pages`
 * (`[[label, count], ...]` in display order) and exactly the non-zero item counters `items`.
 */
async function expectDashboard(admin, step, { shoppers, pages, items }) {
  const want = { shoppers: String(shoppers), pages, items };
  try {
    await admin.waitForFunction(
      ({ want }) => {
        // Installed by addInitScript: the admin page's CSP forbids evaluating strings.
        const got = window.readDashboard();
        return (
          got.shoppers === want.shoppers &&
          JSON.stringify(got.pages) === JSON.stringify(want.pages) &&
          JSON.stringify(Object.entries(got.items).sort()) === JSON.stringify(Object.entries(want.items).sort())
        );
      },
      { want },
      WAIT,
    );
  } catch (error) {
    const got = await admin.evaluate(readDashboard);
    assert.fail(`${step}: dashboard shows ${JSON.stringify(got)}, expected ${JSON.stringify(want)} (${error.message})`);
  }
}

test("the dashboard follows shoppers, pages, carts, tab closes, releases and sales live", async () => {
  const node = await startStore();
  nodes.push(node);
  await node.cli("release", "1");
  const products = await node.inventory();
  const [hopman, breezy] = products;
  assert.equal(breezy.released, false, "product 2 starts unreleased");
  const inStock = hopman.items.filter((i) => i.available_count > 0).map((i) => i.id);
  const [x, y] = inStock;

  // The admin signs in; the page joins the dashboard and shows nobody.
  const adminContext = await browser.newContext({
    httpCredentials: { username: "admin", password: "password" },
    viewport: { width: 1280, height: 1400 },
  });
  await adminContext.addInitScript(`window.readDashboard = ${readDashboard.toString()};`);
  const admin = await adminContext.newPage();
  // ?presence=1 also follows the raw stream with phoenix.js Presence (window.presence).
  const response = await admin.goto(`${node.url}/admin?presence=1`);
  assert.equal(response.status(), 200);
  assert.equal(await admin.title(), "Sneakers23");
  await admin.waitForSelector("#connection-status.connection--live", WAIT);
  await expectDashboard(admin, "nobody yet", { shoppers: 0, pages: [], items: {} });
  assert.equal(await admin.isVisible(`.product-soon-${breezy.id}`), true, "Not released.");
  assert.equal(await admin.textContent(`.product-soon-${breezy.id}`), "Not released.");
  assert.equal(await admin.isVisible(`#admin-items-${hopman.id}`), true);

  // Shopper A, first tab, on the product page.
  const contextA = await browser.newContext();
  const a1 = await contextA.newPage();
  await openShop(a1, node.url);
  await expectDashboard(admin, "A opens /", { shoppers: 1, pages: [["/", 1]], items: {} });
  await addSize(a1, x);
  await waitForCart(a1, [x]);
  await expectDashboard(admin, "A adds x", { shoppers: 1, pages: [["/", 1]], items: { [x]: 1 } });

  // Shopper A, second tab (same cart), on the checkout page.
  const a2 = await contextA.newPage();
  const stored = await a1.evaluate(() => localStorage.storedCart);
  await openShop(a2, `${node.url}/checkout?serialized_cart=${encodeURIComponent(stored)}`);
  await waitForCart(a2, [x]);
  await expectDashboard(admin, "A opens /checkout in a second tab", {
    shoppers: 1,
    pages: [["/", 1], ["/checkout", 1]],
    items: { [x]: 1 },
  });

  // Shopper B, another browser, adds x and y.
  const contextB = await browser.newContext();
  const b1 = await contextB.newPage();
  await openShop(b1, node.url);
  await expectDashboard(admin, "B opens /", {
    shoppers: 2,
    pages: [["/", 2], ["/checkout", 1]],
    items: { [x]: 1 },
  });
  await addSize(b1, x);
  await waitForCart(b1, [x]);
  await addSize(b1, y);
  await waitForCart(b1, [x, y]);
  await expectDashboard(admin, "B adds x and y", {
    shoppers: 2,
    pages: [["/", 2], ["/checkout", 1]],
    items: { [x]: 2, [y]: 1 },
  });
  await admin.waitForFunction(
    () => window.presence?.list().length === 2 && window.presence.list().flatMap((p) => p.metas).length === 3,
    null,
    WAIT,
  );

  // A removes x from its first tab: both of A's tabs follow, x is in B's cart only.
  await removeItem(a1, x);
  await waitForCart(a2, []);
  await expectDashboard(admin, "A removes x", {
    shoppers: 2,
    pages: [["/", 2], ["/checkout", 1]],
    items: { [x]: 1, [y]: 1 },
  });

  // Closing A's checkout tab removes its page tile; closing A's last tab removes A.
  await a2.close();
  await expectDashboard(admin, "A closes /checkout", {
    shoppers: 2,
    pages: [["/", 2]],
    items: { [x]: 1, [y]: 1 },
  });
  await a1.close();
  await expectDashboard(admin, "A closes its last tab", { shoppers: 1, pages: [["/", 1]], items: { [x]: 1, [y]: 1 } });

  // Releases and sales reach the dashboard without a reload (§19.9).
  await node.cli("release", String(breezy.id));
  await admin.waitForSelector(`.product-soon-${breezy.id}`, { state: "hidden", ...WAIT });
  await admin.waitForSelector(`#admin-items-${breezy.id}`, { state: "visible", ...WAIT });
  const before = hopman.items.find((i) => i.id === y).available_count;
  await node.cli("sell", String(y), "--units", "2");
  await admin.waitForFunction(
    ({ y, left }) => document.getElementById(`admin-item-available-${y}`)?.textContent === String(left),
    { y, left: (before - 2).toLocaleString("en-US") },
    WAIT,
  );
  await node.cli("sell", String(x), "--leave", "0");
  await admin.waitForSelector(`#admin-item-${x}.admin-item--level-out`, WAIT);

  // The chart has drawn the shopper line.
  await admin.waitForSelector("#shopper-chart path.chart__line", { state: "attached", ...WAIT });

  if (process.env.DASHBOARD_SCREENSHOT) {
    await admin.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true });
  }
  await b1.close();
  await expectDashboard(admin, "everyone gone", { shoppers: 0, pages: [], items: {} });
  await contextA.close();
  await contextB.close();
  await adminContext.close();
});

test("/admin without credentials is refused with a Basic challenge", async () => {
  const node = await startStore();
  nodes.push(node);
  const response = await fetch(`${node.url}/admin`);
  assert.equal(response.status, 401);
  assert.match(response.headers.get("www-authenticate") ?? "", /^Basic /);
  const wrong = await fetch(`${node.url}/admin`, {
    headers: { Authorization: `Basic ${Buffer.from("admin:nope").toString("base64")}` },
  });
  assert.equal(wrong.status, 401);
});

test("the dashboard explains its dots and warns when carts hold more than is left", async () => {
  const node = await startStore();
  nodes.push(node);
  await node.cli("release", "1");
  const [hopman] = await node.inventory();
  const x = hopman.items.find((i) => i.available_count > 1).id;
  const adminContext = await browser.newContext({
    httpCredentials: { username: "admin", password: "password" },
    viewport: { width: 390, height: 844 }, // a phone
  });
  const admin = await adminContext.newPage();
  await admin.goto(`${node.url}/admin`);
  await admin.waitForSelector("#connection-status.connection--live", WAIT);
  assert.match(await admin.textContent("#shoppers-by-page h2"), /Tabs/i);
  const legend = await admin.textContent(".admin-legend");
  for (const word of ["plenty", "selling fast", "last few", "sold out"]) assert.ok(legend.includes(word), word);
  // On a phone, the chart's x-axis labels do not overlap.
  const boxes = await admin.$$eval("#shopper-chart .chart__axis-label[text-anchor]", (labels) =>
    labels.filter((l) => /min|now/.test(l.textContent)).map((l) => l.getBBox()).map((b) => [b.x, b.x + b.width]),
  );
  boxes.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < boxes.length; i++) assert.ok(boxes[i][0] >= boxes[i - 1][1], `labels ${i - 1} and ${i} overlap`);
  assert.equal(await admin.isVisible(`#admin-item-${x} .admin-item__over`), false);

  const shopper = await (await browser.newContext()).newPage();
  await openShop(shopper, node.url);
  await addSize(shopper, x);
  await waitForCart(shopper, [x]);
  await node.cli("sell", String(x), "--leave", "0");
  await admin.waitForSelector(`#admin-item-${x} .admin-item__over:not([hidden])`, WAIT);
  assert.match(await admin.textContent(`#admin-item-${x}`), /more in carts than available/);
  await adminContext.close();
});
