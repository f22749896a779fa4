// The book's socket.js (chapters 3 to 6 and 10), with every result shown on the page as well
// as in the console. Element ids: ping, pong, param-ping-error, param-ping-ok, invalid, send-ping,
// auth-socket, recurring, dedupe, stats, slow-pings, parallel-slow-pings, user-push,
// user-push-timed, tracked.
import { Socket } from "/js/phoenix.mjs";

document.getElementById("user-id").textContent = window.userId;

function show(id, label, text) {
  let dd = document.getElementById(id);
  if (!dd) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    dd = document.createElement("dd");
    dd.id = id;
    document.getElementById("results").append(dt, dd);
  }
  dd.textContent = text;
}

function log(id, label, ...args) {
  console.log(...args);
  show(id, label, args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
}

const authSocket = new Socket("/auth_socket", { params: { token: window.authToken } });
authSocket.onOpen(() => log("auth-socket", "authSocket", "authSocket connected"));
authSocket.connect();

// Chapter 10: the tracked channel (the UserTracker; the page receives nothing from it).
const trackedChannel = authSocket.channel("tracked");
trackedChannel.join()
  .receive("ok", () => log("tracked", "tracked", "tracking user", window.userId))
  .receive("error", (resp) => log("tracked", "tracked", "tracked join error", resp));

if (window.demos) {
  // Chapter 3: PingChannel on /socket.
  const socket = new Socket("/socket", {});
  socket.connect();
  const channel = socket.channel("ping");
  channel.join()
    .receive("ok", (resp) => console.log("Joined ping", resp))
    .receive("error", (resp) => console.log("Unable to join ping", resp));

  console.log("send ping");
  channel.push("ping")
    .receive("ok", (resp) => log("ping", "ping", "receive", resp.ping));

  console.log("send pong");
  channel.push("pong")
    .receive("ok", () => console.log("won't happen"))
    .receive("error", () => console.error("won't happen yet"))
    .receive("timeout", (resp) => log("pong", "pong", "pong message timeout", resp));

  channel.push("param_ping", { error: true })
    .receive("error", (resp) => log("param-ping-error", "param_ping error", "param_ping error:", resp));

  channel.push("param_ping", { error: false, arr: [1, 2] })
    .receive("ok", (resp) => log("param-ping-ok", "param_ping ok", "param_ping ok:", resp));

  // No handle_in for "invalid": the channel crashes (phx_error), phoenix.js rejoins it, and the
  // push only times out.
  channel.push("invalid")
    .receive("ok", () => console.log("won't happen"))
    .receive("error", () => console.error("won't happen"))
    .receive("timeout", () => log("invalid", "invalid", "invalid event timeout"));

  channel.on("send_ping", (payload) => {
    console.log("ping requested", payload);
    channel.push("ping")
      .receive("ok", (resp) => log("send-ping", "send_ping", "ping requested", payload, "ping:", resp.ping));
  });

  // Chapter 5: RecurringChannel on /auth_socket.
  let tokens = 0;
  const recurringChannel = authSocket.channel("recurring");
  recurringChannel.on("new_token", (payload) => {
    tokens += 1;
    console.log("received new auth token", payload);
    show("recurring", "recurring", `received new auth token (${tokens})`);
  });
  recurringChannel.join();

  // Chapter 5: DedupeChannel on /socket.
  const numbers = [];
  const dupeChannel = socket.channel("dupe");
  dupeChannel.on("number", (payload) => {
    console.log("new number received", payload);
    numbers.push(payload.value);
    show("dedupe", "dedupe", `numbers received: ${numbers.join(",")}`);
  });
  dupeChannel.join().receive("ok", () => show("dedupe", "dedupe", "numbers received: (none yet)"));

  // Chapter 6: StatsChannel on /stats_socket.
  const statsSocket = new Socket("/stats_socket", {});
  statsSocket.connect();
  const statsChannelInvalid = statsSocket.channel("invalid");
  statsChannelInvalid.join()
    .receive("error", () => statsChannelInvalid.leave());
  const statsChannelValid = statsSocket.channel("valid");
  statsChannelValid.join();
  let statsPongs = 0;
  for (let i = 0; i < 5; i++) {
    statsChannelValid.push("ping").receive("ok", () => {
      statsPongs += 1;
      log("stats", "stats pings", `stats ping responses: ${statsPongs}/5`);
    });
  }

  // Chapter 6: slow pings, serial then parallel.
  function slowPings(event, id, label) {
    const slowSocket = new Socket("/stats_socket", {});
    slowSocket.connect();
    const slowChannel = slowSocket.channel("valid");
    slowChannel.join();
    const started = Date.now();
    let answered = 0;
    for (let i = 0; i < 5; i++) {
      slowChannel.push(event, {}, 20000).receive("ok", () => {
        answered += 1;
        console.log(`${label} response received`, i);
        show(id, label, `${answered}/5 answered after ${Math.round((Date.now() - started) / 1000)} s`);
      });
    }
    console.log(`5 ${label}s requested`);
    show(id, label, "0/5 answered");
  }
  slowPings("slow_ping", "slow-pings", "Slow ping");
  slowPings("parallel_slow_ping", "parallel-slow-pings", "Parallel slow ping");

  // Chapter 6: the push pipeline to user:<id>.
  const authUserChannel = authSocket.channel(`user:${window.userId}`);
  authUserChannel.on("push", (payload) => log("user-push", "push", "received auth user push", payload));
  authUserChannel.on("push_timed", (payload) =>
    log("user-push-timed", "push_timed", "received timed auth user push", payload));
  authUserChannel.join();
}
