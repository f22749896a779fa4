// Compatibility suite: the official `phoenix` client (and raw frames where the client cannot be
// made to misbehave) against the real server binary of crates/channels/examples/compat_server.rs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Socket, LongPoll, Presence } from "phoenix";
import WebSocket from "ws";
import { binary, startServer, nextEvent, outcome, until } from "./support.mjs";

const serverBin = process.env.COMPAT_SERVER || binary("compat_server", { example: true });
let server;
const sockets = [];

before(async () => {
  server = await startServer(serverBin, [], { env: { LONGPOLL_WINDOW_MS: "500" } });
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await server?.stop();
});

function socketUrl() {
  return `ws://127.0.0.1:${server.port}/socket`;
}

function connect(params = {}, opts = {}) {
  const socket = new Socket(socketUrl(), {
    transport: WebSocket,
    params,
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 50,
    ...opts,
  });
  sockets.push(socket);
  socket.connect();
  return socket;
}

async function joined(socket, topic, params = {}) {
  const channel = socket.channel(topic, params);
  const welcome = nextEvent(channel, "welcome");
  const result = await outcome(channel.join());
  assert.equal(result.status, "ok", JSON.stringify(result));
  await welcome;
  return channel;
}

/** A raw V2 WebSocket for the cases the official client never produces. */
function raw(query = "vsn=2.0.0") {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket/websocket?${query}`);
    const frames = [];
    const waiters = [];
    ws.on("message", (data, isBinary) => {
      const frame = isBinary ? data : JSON.parse(data.toString());
      frames.push(frame);
      waiters.splice(0).forEach((w) => w());
    });
    ws.on("open", () =>
      resolve({
        ws,
        frames,
        send: (frame) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
        async waitFor(predicate, ms = 3000) {
          const deadline = Date.now() + ms;
          for (;;) {
            const found = frames.find(predicate);
            if (found) return found;
            if (Date.now() > deadline) throw new Error(`frame not seen; got ${JSON.stringify(frames)}`);
            await new Promise((r) => {
              waiters.push(r);
              setTimeout(r, 50);
            });
          }
        },
      }),
    );
    ws.on("error", reject);
  });
}

test("join replies with the channel's response and pushes after join", async () => {
  const socket = connect({ user: "ann" });
  const channel = socket.channel("room:join", {});
  const welcome = nextEvent(channel, "welcome");
  const result = await outcome(channel.join());
  assert.deepEqual(result, { status: "ok", response: { joined: "room:join" } });
  assert.deepEqual(await welcome, { topic: "room:join" });
});

test("a refused connect is an HTTP 403", async () => {
  const status = await new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket/websocket?vsn=2.0.0&user=intruder`);
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode));
    ws.on("open", () => resolve("opened"));
  });
  assert.equal(status, 403);
  const badVsn = await new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket/websocket?vsn=3.0.0`);
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode));
    ws.on("open", () => resolve("opened"));
  });
  assert.equal(badVsn, 403);
});

test("join errors and unmatched topics are error replies", async () => {
  const socket = connect();
  const refused = await outcome(socket.channel("room:secret", { reject: true }).join());
  assert.deepEqual(refused, { status: "error", response: { reason: "unauthorized" } });
  const unmatched = await outcome(socket.channel("nowhere:1", {}).join());
  assert.deepEqual(unmatched, { status: "error", response: { reason: "unmatched topic" } });
  const crashed = await outcome(socket.channel("room:crashy", { crash_join: true }).join(5000));
  assert.deepEqual(crashed, { status: "error", response: { reason: "join crashed" } });
});

test("push gets ok and error replies, deferred replies, and times out when ignored", async () => {
  const socket = connect();
  const channel = await joined(socket, "room:push");
  assert.deepEqual(await outcome(channel.push("echo", { a: [1, "b"] })), {
    status: "ok",
    response: { echo: { a: [1, "b"] } },
  });
  assert.deepEqual(await outcome(channel.push("fail", {})), {
    status: "error",
    response: { reason: "failed on request" },
  });
  assert.deepEqual(await outcome(channel.push("later", {})), {
    status: "ok",
    response: { later: true },
  });
  assert.deepEqual(await outcome(channel.push("ignore", {}, 200)), { status: "timeout" });
});

test("a broadcast reaches every joined client, broadcast_from all but the sender", async () => {
  const clients = [];
  for (let i = 0; i < 40; i++) {
    const socket = connect({ user: `u${i}` });
    clients.push(await joined(socket, "room:many"));
  }
  const received = clients.map((c) => nextEvent(c, "shout"));
  assert.equal((await outcome(clients[0].push("shout", { n: 1 }))).status, "ok");
  for (const payload of await Promise.all(received)) assert.deepEqual(payload, { n: 1 });

  let senderGotIt = false;
  const ref = clients[0].on("shout", () => (senderGotIt = true));
  const others = clients.slice(1).map((c) => nextEvent(c, "shout"));
  assert.equal((await outcome(clients[0].push("shout_others", { n: 2 }))).status, "ok");
  for (const payload of await Promise.all(others)) assert.deepEqual(payload, { n: 2 });
  // The sender's copy would have been written before the others' replies were read.
  assert.equal(senderGotIt, false);
  clients[0].off("shout", ref);
});

test("leave replies ok, closes the channel, and stops its broadcasts", async () => {
  const socket = connect();
  const channel = await joined(socket, "room:leave");
  const closed = new Promise((resolve) => channel.onClose(resolve));
  assert.equal((await outcome(channel.leave())).status, "ok");
  await closed;
  const watcher = await joined(connect(), "room:leave");
  let leftGotIt = false;
  channel.on("shout", () => (leftGotIt = true));
  const seen = nextEvent(watcher, "shout");
  await outcome(watcher.push("shout", { after: "leave" }));
  await seen;
  assert.equal(leftGotIt, false);
});

test("heartbeats are answered", async () => {
  const socket = connect();
  await until(() => socket.isConnected(), "socket connected");
  const rtt = await new Promise((resolve) => socket.ping(resolve));
  assert.ok(rtt >= 0);
});

test("a crashing handler errors only its channel, which rejoins", async () => {
  const socket = connect();
  const crashy = await joined(socket, "room:crash");
  const sibling = await joined(socket, "room:sibling");
  const errored = new Promise((resolve) => crashy.onError(resolve));
  const rejoined = nextEvent(crashy, "welcome");
  const result = await outcome(crashy.push("crash", {}, 300));
  assert.equal(result.status, "timeout");
  await errored;
  await rejoined;
  assert.deepEqual(await outcome(crashy.push("echo", { ok: 1 })), {
    status: "ok",
    response: { echo: { ok: 1 } },
  });
  assert.deepEqual((await outcome(sibling.push("echo", 2))).response, { echo: 2 });
});

test("the client reconnects and rejoins after the server restarts", async () => {
  const socket = connect();
  const channel = await joined(socket, "room:restart");
  const port = server.port;
  await server.stop();
  server = await startServer(serverBin, [], { env: { PORT: String(port), LONGPOLL_WINDOW_MS: "500" } });
  await nextEvent(channel, "welcome", 10000);
  assert.deepEqual((await outcome(channel.push("echo", "back"))).response, { echo: "back" });
});

test("a disconnect broadcast to the socket id closes it with 1001 and the client comes back", async () => {
  const socket = connect({ user: "kicked" });
  const channel = await joined(socket, "room:kick");
  const closed = new Promise((resolve) => socket.onClose((event) => resolve(event.code)));
  const rejoined = nextEvent(channel, "welcome", 10000);
  await fetch(`${server.url}/disconnect/user_socket:kicked`, { method: "POST" });
  assert.equal(await closed, 1001);
  await rejoined;
});

test("binary payloads travel both ways", async () => {
  const socket = connect();
  const channel = await joined(socket, "room:binary");
  const sent = new Uint8Array([0, 1, 2, 250]).buffer;
  const result = await outcome(channel.push("echo", sent));
  assert.equal(result.status, "ok");
  assert.ok(result.response instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(result.response)], [0, 1, 2, 250]);
  const pushed = nextEvent(channel, "binary");
  await outcome(channel.push("push_binary", {}));
  assert.deepEqual([...new Uint8Array(await pushed)], [1, 2, 3, 255]);
});

test("the V1 serializer works for joins, replies and broadcasts", async () => {
  const socket = connect({}, {
    vsn: "1.0.0",
    encode: (msg, callback) => callback(JSON.stringify({ topic: msg.topic, event: msg.event, payload: msg.payload, ref: msg.ref, join_ref: msg.join_ref })),
    decode: (text, callback) => callback(JSON.parse(text)),
  });
  const channel = await joined(socket, "room:v1");
  assert.deepEqual((await outcome(channel.push("echo", { v: 1 }))).response, { echo: { v: 1 } });
  const shout = nextEvent(channel, "shout");
  await outcome(channel.push("shout", { from: "v1" }));
  assert.deepEqual(await shout, { from: "v1" });
});

test("the LongPoll transport joins, replies and receives broadcasts", async () => {
  const socket = new Socket(socketUrl(), { transport: LongPoll, params: { user: "poller" } });
  sockets.push(socket);
  socket.connect();
  const channel = await joined(socket, "room:lp");
  assert.deepEqual((await outcome(channel.push("echo", { lp: true }))).response, { echo: { lp: true } });
  const wsPeer = await joined(connect(), "room:lp");
  const shout = nextEvent(channel, "shout");
  await outcome(wsPeer.push("shout", { to: "poller" }));
  assert.deepEqual(await shout, { to: "poller" });
});

test("a duplicate join closes the previous channel first (raw frames)", async () => {
  const c = await raw();
  c.send(["1", "1", "room:dup", "phx_join", {}]);
  await c.waitFor((f) => f[1] === "1" && f[3] === "phx_reply");
  c.send(["2", "2", "room:dup", "phx_join", {}]);
  const close = await c.waitFor((f) => f[3] === "phx_close");
  assert.deepEqual(close, ["1", "1", "room:dup", "phx_close", {}]);
  const reply = await c.waitFor((f) => f[1] === "2" && f[3] === "phx_reply");
  assert.equal(reply[4].status, "ok");
  assert.ok(c.frames.indexOf(close) < c.frames.indexOf(reply), "close before the new reply");
  // A message carrying the old join_ref is stale and dropped; the current one is answered.
  c.send(["1", "3", "room:dup", "echo", { stale: true }]);
  c.send(["2", "4", "room:dup", "echo", { fresh: true }]);
  const fresh = await c.waitFor((f) => f[1] === "4");
  assert.deepEqual(fresh[4], { status: "ok", response: { echo: { fresh: true } } });
  assert.equal(c.frames.find((f) => f[1] === "3"), undefined);
  c.ws.close();
});

test("malformed frames are ignored and the connection keeps serving (raw frames)", async () => {
  const c = await raw();
  c.send("this is not json");
  c.send("[1,2]");
  c.send(JSON.stringify({ not: "an array" }));
  c.send([null, "9", "phoenix", "heartbeat", {}]);
  const reply = await c.waitFor((f) => f[1] === "9");
  assert.deepEqual(reply, [null, "9", "phoenix", "phx_reply", { status: "ok", response: {} }]);
  c.send(["5", "6", "room:never-joined", "echo", {}]);
  const unmatched = await c.waitFor((f) => f[1] === "6");
  assert.deepEqual(unmatched[4], { status: "error", response: { reason: "unmatched topic" } });
  c.send(["7", "7", "room:x", "phx_leave", {}]);
  const leave = await c.waitFor((f) => f[1] === "7");
  assert.deepEqual(leave, ["7", "7", "room:x", "phx_reply", { status: "ok", response: {} }]);
  c.ws.close();
});

test("an oversize frame closes the connection with 1009 and others are unaffected", async () => {
  const bystander = connect();
  const channel = await joined(bystander, "room:bystander");
  const c = await raw();
  const code = new Promise((resolve) => c.ws.on("close", (closeCode) => resolve(closeCode)));
  c.send(["1", "1", "room:big", "echo", { blob: "x".repeat(200 * 1024) }]);
  assert.equal(await code, 1009);
  assert.deepEqual((await outcome(channel.push("echo", 1))).response, { echo: 1 });
});

test("Presence: state, joins, updates and leaves from several sockets reach phoenix.js Presence", async () => {
  const topic = "room:presence";
  const observerSocket = connect({ user: "observer" });
  const observer = observerSocket.channel(topic, {});
  const presence = new Presence(observer);
  const joins = [];
  const leaves = [];
  presence.onJoin((key, current, joined) => joins.push({ key, fresh: !current, metas: joined.metas }));
  presence.onLeave((key, current, left) => leaves.push({ key, remaining: current.metas.length, metas: left.metas }));
  let syncs = 0;
  presence.onSync(() => syncs++);
  assert.equal((await outcome(observer.join())).status, "ok");
  assert.equal((await outcome(observer.push("track", { role: "observer" }))).status, "ok");
  await until(() => presence.list().length === 1, "observer sees itself");

  const annSocket = connect({ user: "ann" });
  const ann = await joined(annSocket, topic);
  assert.equal((await outcome(ann.push("track", { status: "online" }))).status, "ok");
  const annTab2 = await joined(connect({ user: "ann" }), topic);
  assert.equal((await outcome(annTab2.push("track", { status: "online", tab: 2 }))).status, "ok");
  const bobSocket = connect({ user: "bob" });
  const bob = await joined(bobSocket, topic);
  assert.equal((await outcome(bob.push("track", { status: "online" }))).status, "ok");

  const byKey = () => Object.fromEntries(presence.list((key, p) => [key, p.metas]));
  await until(() => byKey().ann?.length === 2 && byKey().bob?.length === 1, "ann (two tabs) and bob listed");
  for (const metas of Object.values(byKey())) {
    for (const meta of metas) assert.match(meta.phx_ref, /^[A-Za-z0-9_-]{16}$/);
  }
  assert.ok(joins.some((j) => j.key === "ann" && j.fresh));
  assert.ok(syncs >= 4);

  // An update is a leave of the old meta and a join of the new one carrying phx_ref_prev.
  const before = byKey().bob[0];
  assert.equal((await outcome(bob.push("update", { status: "away" }))).status, "ok");
  await until(() => byKey().bob?.[0]?.status === "away", "bob's update arrives");
  const after = byKey().bob[0];
  assert.equal(byKey().bob.length, 1);
  assert.equal(after.phx_ref_prev, before.phx_ref);
  assert.notEqual(after.phx_ref, before.phx_ref);

  // Leaving the channel removes the presence; so does a closed socket; so does a crash.
  assert.equal((await outcome(annTab2.leave())).status, "ok");
  await until(() => byKey().ann?.length === 1, "ann's second tab left");
  assert.ok(leaves.some((l) => l.key === "ann" && l.remaining === 1));
  annSocket.disconnect();
  await until(() => !byKey().ann, "ann's socket closed");
  await outcome(bob.push("crash", {}, 200));
  await until(() => !byKey().bob, "bob's channel crashed");
  assert.deepEqual(Object.keys(byKey()), ["observer"]);

  // A newcomer gets the same list as presence_state.
  const late = connect({ user: "late" }).channel(topic, {});
  const state = nextEvent(late, "presence_state");
  await outcome(late.join());
  await outcome(late.push("track", {}));
  const initial = await state;
  assert.deepEqual(Object.keys(initial).sort(), ["late", "observer"]);
  assert.equal(initial.observer.metas[0].role, "observer");
});

test("disconnect() ends cleanly: the server answers the close frame (wasClean, the client's code echoed)", async () => {
  // phoenix.js sends a close frame with no code unless given one; the answer then has none
  // either (1005 on the client), as Phoenix's Cowboy answers. With a code, it comes back.
  for (const [code, expected] of [[undefined, 1005], [1000, 1000]]) {
    const socket = connect();
    await joined(socket, "room:bye");
    const closed = new Promise((resolve) => socket.onClose((event) => resolve(event)));
    socket.disconnect(undefined, code);
    const event = await closed;
    assert.equal(event.code, expected);
    assert.equal(event.wasClean, true);
  }
});
