// Browser suite of examples/chat: headless Chromium opens the chat page of the real `chat` binary
// as two users; each sees the other in the room (phoenix.js Presence), a message typed by one
// appears on both pages, a refused name shows the form again, and closing a page takes its user
// out of the other page's list.
//
// Waits are on DOM conditions, never fixed sleeps.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { binary, startServer } from "./support.mjs";
import { CHROMIUM_ARGS } from "./shop.mjs";

let browser;
let server;

before(async () => {
  server = await startServer(binary("chat"), [], { env: { PORT: "0" } });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Waits until `#id`'s text matches `pattern`; fails with what it shows otherwise. */
async function shows(page, id, pattern, ms = 10000) {
  try {
    await page.waitForFunction(
      ({ id, source }) => new RegExp(source).test(document.getElementById(id)?.textContent ?? ""),
      { id, source: pattern.source },
      { timeout: ms, polling: 50 },
    );
  } catch (error) {
    const text = await page.evaluate((id) => document.getElementById(id)?.textContent, id);
    throw new Error(`#${id} shows ${JSON.stringify(text)}, want ${pattern}: ${error.message}`);
  }
}

/** The names listed under "Here now". */
function members(page) {
  return page.$$eval("#members li", (items) => items.map((item) => item.textContent).sort());
}

test("two users see each other and each other's messages; leaving empties the seat", async () => {
  const room = `room-${process.pid}`;
  const alice = await browser.newPage();
  const errors = [];
  alice.on("pageerror", (error) => errors.push(error.message));
  await alice.goto(`${server.url}/?name=alice&room=${room}`);
  await shows(alice, "status", /^connected$/);
  await shows(alice, "members", /alice/);

  const bob = await browser.newPage();
  await bob.goto(`${server.url}/?name=bob&room=${room}`);
  await shows(bob, "status", /^connected$/);
  await shows(alice, "members", /bob/);
  assert.deepEqual(await members(bob), ["alice", "bob"]);

  await alice.fill("#body", "hello bob");
  await alice.press("#body", "Enter");
  await shows(bob, "messages", /alice: hello bob/);
  await shows(alice, "messages", /alice: hello bob/);
  assert.equal(await alice.inputValue("#body"), "", "the input is cleared once the reply is ok");

  await bob.close();
  await alice.waitForFunction(
    () => [...document.querySelectorAll("#members li")].every((li) => li.textContent !== "bob"),
    null,
    { timeout: 10000, polling: 50 },
  );
  assert.deepEqual(await members(alice), ["alice"]);
  assert.deepEqual(errors, []);
  await alice.close();
});

test("a name that is not allowed shows the form again", async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/?name=${encodeURIComponent("<b>x</b>")}`);
  assert.match(await page.textContent("[role=alert]"), /A name is 1 to 32/);
  assert.equal(await page.$("meta[name=user-token]"), null);
  await page.close();
});
