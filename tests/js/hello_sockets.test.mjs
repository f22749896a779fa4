// Browser suite of the hello_sockets example: headless Chromium loads `/` of the real
// `hello_sockets serve` binary and every demo of the book's socket.js (chapters 3 to 6) must show
// its result on the page (and log it to the console); the console commands (`hello_sockets
// broadcast|dedupe|push|tracker list`) drive the demos that wait for the server. `/tracked`
// tracks its user until the page closes (chapter 10).
//
// Waits are on DOM conditions and command output, never fixed sleeps.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { binary, startServer, until } from "./support.mjs";
import { CHROMIUM_ARGS } from "./shop.mjs";

const BIN = binary("hello_sockets");
const run = promisify(execFile);

let browser;
let server;

before(async () => {
  server = await startServer(BIN, ["serve", "--port", "0"], {
    env: { PUBSUB_URL: "", STATSD_ADDR: "", NODE_NAME: "" },
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Runs a console command against the server; resolves with its stdout. */
async function console_(...args) {
  const { stdout } = await run(BIN, args, { env: { ...process.env, NODE_URL: server.url } });
  return stdout;
}

/** Waits until the element `#id` shows text matching `pattern`. */
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

test("every socket.js demo of / shows its result on the page and in the console", async () => {
  const page = await browser.newPage();
  const logged = [];
  page.on("console", (message) => logged.push(message.text()));
  await page.goto(server.url + "/");

  // Chapter 3: PingChannel.
  await shows(page, "ping", /^receive pong$/);
  await shows(page, "param-ping-error", /param_ping error: \{"reason":"You asked for this!"\}/);
  await shows(page, "param-ping-ok", /param_ping ok: \{"arr":\[1,2\],"error":false\}/);
  // Chapter 4: the authenticated socket; chapter 10: tracked as the page's user.
  await shows(page, "auth-socket", /^authSocket connected$/);
  await shows(page, "tracked", /^tracking user 1$/);
  // Chapter 6: the stats channel and the slow pings (five parallel ones in ~3 s, serial ones
  // one by one).
  await shows(page, "stats", /5\/5/);
  await shows(page, "parallel-slow-pings", /^5\/5 answered/);
  await shows(page, "slow-pings", /^[1-4]\/5 answered/);

  // Chapter 3: a broadcast request_ping makes the page ping.
  assert.equal((await console_("broadcast", "ping", "request_ping", "{}")).trim(), ":ok");
  await shows(page, "send-ping", /from_node.*nonode@nohost.*ping: pong/);

  // Chapter 5: the dedupe channel and the recurring token.
  await console_("dedupe", "1,2,3", "--times", "100");
  await shows(page, "dedupe", /^numbers received: 1,2,3$/);
  await shows(page, "recurring", /received new auth token \(1\)/);

  // Chapter 6: the push pipeline to user:1.
  await console_("push", "1", '{"n":1}', "--timed");
  await shows(page, "user-push-timed", /received timed auth user push \{"n":1\}/);
  await console_("push", "1", '{"hello":"world"}');
  await shows(page, "user-push", /received auth user push \{"hello":"world"\}/);

  // Chapter 3: pushes that get no reply time out after ten seconds: `pong` (noreply) and
  // `invalid` (the channel crashed and was rejoined).
  await shows(page, "pong", /^pong message timeout/, 15000);
  await shows(page, "invalid", /^invalid event timeout$/, 15000);

  for (const line of ["Joined ping {}", "receive pong", "authSocket connected", "new number received"]) {
    assert.ok(logged.some((l) => l.startsWith(line)), `console shows "${line}": ${logged.join(" | ")}`);
  }
  await page.close();
});

test("/tracked?user_id= tracks its user in the UserTracker until the page closes", async () => {
  const page = await browser.newPage();
  await page.goto(server.url + "/tracked?user_id=other");
  await shows(page, "tracked", /^tracking user other$/);
  const listed = await console_("tracker", "list");
  const line = listed.split("\n").find((l) => l.startsWith("other "));
  assert.ok(line, `tracker list shows other: ${listed}`);
  const meta = JSON.parse(line.slice("other ".length));
  assert.equal(meta.user_id, "other");
  assert.match(meta.online_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  await page.close();
  await until(
    async () => !(await console_("tracker", "list")).split("\n").some((l) => l.startsWith("other ")),
    "other leaves the list once its page is closed",
    10000,
  );
});
