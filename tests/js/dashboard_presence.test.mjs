// The admin socket with the official `phoenix` client (spec §14.3–14.5, §19.11): carts opened by
// the client on the ProductSocket appear in a phoenix.js `Presence` on `admin:cart_tracker`
// exactly as the book's dashboard consumed them — `presence_state` first, then `presence_diff`s
// for every join, update (leave + join with phx_ref_prev) and leave — and the same carts drive
// the aggregate stream on `admin:dashboard` (`aggregate`, then `aggregate_delta`s).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Socket, Presence } from "phoenix";
import WebSocket from "ws";
import { startStore } from "./shop.mjs";
import { nextEvent, outcome, until } from "./support.mjs";

let node;
const sockets = [];
// Item ids in stock in each product: the seed sells out ~10 % of sizes at random.
let inStock = [[], []];

before(async () => {
  node = await startStore();
  await node.cli("release", "1");
  await node.cli("release", "2");
  inStock = (await node.inventory()).map((p) =>
    p.items.filter((i) => i.available_count > 0).map((i) => String(i.id)),
  );
});

after(async () => {
  for (const socket of sockets) socket.disconnect();
  await node?.cleanup();
});

/** Signs in on /admin and returns the page's admin token. */
async function adminToken() {
  const response = await fetch(`${node.url}/admin`, {
    headers: { Authorization: `Basic ${Buffer.from("admin:password").toString("base64")}` },
  });
  assert.equal(response.status, 200);
  const match = (await response.text()).match(/window\.adminToken = "([^"]+)"/);
  assert.ok(match, "the admin page embeds a token");
  return match[1];
}

function connect(path, params = {}) {
  const socket = new Socket(`ws://127.0.0.1:${node.port}${path}`, {
    transport: WebSocket,
    params,
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 50,
  });
  sockets.push(socket);
  socket.connect();
  return socket;
}

/** A shopper tab: its own socket and the cart channel of `id`, joined with `params`. */
async function openCart(id, params) {
  const socket = connect("/product_socket");
  const channel = socket.channel(`cart:${id}`, params);
  const cart = nextEvent(channel, "cart");
  const joined = await outcome(channel.join());
  assert.equal(joined.status, "ok", JSON.stringify(joined));
  await cart;
  return { socket, channel };
}

const cartId = (c) => c.repeat(64);

test("carts opened with the client drive the official Presence on admin:cart_tracker", async () => {
  const admin = connect("/admin_socket", { token: await adminToken() });
  const channel = admin.channel("admin:cart_tracker", {});
  const presence = new Presence(channel);
  const diffs = [];
  channel.on("presence_diff", (diff) => diffs.push(diff));
  let syncs = 0;
  presence.onSync(() => (syncs += 1));
  const state = nextEvent(channel, "presence_state");
  assert.equal((await outcome(channel.join())).status, "ok");
  assert.deepEqual(await state, {}, "nobody is shopping yet");
  await until(() => syncs >= 1, "first sync");
  assert.deepEqual(presence.list(), []);

  const metasOf = (key) => presence.list((k, p) => (k === key ? p.metas : null)).find(Boolean) ?? [];

  // Shopper A in two tabs on two pages, shopper B without a page.
  const [a, b] = [cartId("a"), cartId("b")];
  const a1 = await openCart(a, { page: "/" });
  const a2 = await openCart(a, { page: "/checkout" });
  const b1 = await openCart(b, {});
  await until(() => metasOf(a).length === 2 && metasOf(b).length === 1, "three tabs tracked");
  assert.deepEqual(metasOf(a).map((m) => m.page).sort(), ["/", "/checkout"]);
  assert.deepEqual(metasOf(b)[0].items, []);
  assert.equal(metasOf(b)[0].page, null);
  for (const meta of [...metasOf(a), ...metasOf(b)]) {
    assert.equal(typeof meta.phx_ref, "string");
    assert.equal(typeof meta.page_loaded_at, "number");
  }

  // add_item in A's first tab: both tabs of A end up with [1], each update a leave + join.
  const itemA = inStock[0][0];
  const added = await outcome(a1.channel.push("add_item", { item_id: itemA }));
  assert.equal(added.status, "ok", JSON.stringify(added));
  await until(() => metasOf(a).length === 2 && metasOf(a).every((m) => m.items.join() === itemA), "A's tabs updated");
  const update = diffs.find((d) => d.joins[a] && d.leaves[a]);
  assert.ok(update, "an update arrives as a join and a leave of the same key");
  const joinedMeta = update.joins[a].metas[0];
  assert.ok(update.leaves[a].metas.some((m) => m.phx_ref === joinedMeta.phx_ref_prev));

  // A second item in B; B's meta follows.
  const itemB = inStock[1][0];
  assert.equal((await outcome(b1.channel.push("add_item", { item_id: itemB }))).status, "ok");
  await until(() => metasOf(b)[0]?.items.join() === itemB, "B updated");

  // The client's state equals the server's list, meta by meta.
  const server = JSON.parse(await node.cli("presence", "list"));
  const refs = (entries) =>
    Object.fromEntries(
      Object.entries(entries).map(([key, p]) => [key, p.metas.map((m) => m.phx_ref).sort()]),
    );
  assert.deepEqual(refs(presence.state), refs(server));

  // A's checkout tab leaves its channel; B closes its connection.
  await outcome(a2.channel.leave());
  await until(() => metasOf(a).length === 1, "A's checkout tab gone");
  assert.equal(metasOf(a)[0].page, "/");
  b1.socket.disconnect();
  await until(() => metasOf(b).length === 0, "B gone");
  assert.deepEqual(presence.list((key) => key), [a]);
  a1.socket.disconnect();
  await until(() => presence.list().length === 0, "everyone gone");
  channel.leave();
});

test("admin:dashboard gives one aggregate then small deltas with consecutive seqs", async () => {
  const admin = connect("/admin_socket", { token: await adminToken() });
  const channel = admin.channel("admin:dashboard", {});
  const deltas = [];
  channel.on("aggregate_delta", (delta) => deltas.push(delta));
  const first = nextEvent(channel, "aggregate");
  assert.equal((await outcome(channel.join())).status, "ok");
  const snapshot = await first;
  assert.ok(JSON.stringify(snapshot).length < 20 * 1024, "first payload under 20 KB");
  assert.equal(typeof snapshot.seq, "number");
  assert.equal(snapshot.released["1"], true);
  assert.ok(snapshot.stock["1"] && typeof snapshot.stock["1"].available === "number");

  const tabs = [];
  for (const [n, page] of ["/bench/1", "/bench/2", "/bench/2"].entries()) {
    const tab = await openCart(cartId(String(n)), { page });
    assert.equal((await outcome(tab.channel.push("add_item", { item_id: inStock[0][n] }))).status, "ok");
    tabs.push(tab);
  }
  const view = () => {
    const state = structuredClone(snapshot);
    for (const d of deltas.filter((d) => d.seq > snapshot.seq)) {
      if (d.shoppers !== undefined) state.shoppers = d.shoppers;
      for (const [page, count] of d.pages ?? []) {
        state.pages = state.pages.filter(([p]) => p !== page);
        if (count > 0) state.pages.push([page, count]);
      }
      Object.assign(state.carts, d.carts ?? {});
    }
    return state;
  };
  await until(() => view().shoppers === 3, "three shoppers", 10000);
  await until(() => inStock[0].slice(0, 3).every((id) => view().carts[id] === 1), "carts");
  assert.deepEqual(Object.fromEntries(view().pages), { "/bench/1": 1, "/bench/2": 2 });
  const seqs = deltas.map((d) => d.seq).filter((s) => s > snapshot.seq);
  seqs.forEach((seq, i) => assert.equal(seq, snapshot.seq + 1 + i, "consecutive sequence numbers"));
  for (const delta of deltas) assert.ok(JSON.stringify(delta).length < 1024, "small deltas");
  for (const tab of tabs) tab.socket.disconnect();
  await until(() => view().shoppers === 0, "everyone gone", 10000);
  channel.leave();
});
