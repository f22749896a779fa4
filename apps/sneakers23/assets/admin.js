// Admin dashboard (spec §14.2, §14.5), fed by server-side aggregates.
//
// Connects /admin_socket with window.adminToken and joins `admin:dashboard`: the server pushes
// one `aggregate` snapshot after the join, then `aggregate_delta`s (at most every 250 ms, only
// the counters that changed, as absolute values). Each delta has a sequence number: a delta
// older than the state is ignored, a gap asks the server for a fresh snapshot. After a
// reconnect the rejoin brings a new snapshot. Payload formats: src/admin/aggregate.rs.
//
// With `?presence=1` the page also joins `admin:cart_tracker` and exposes the phoenix.js
// Presence of the raw stream as `window.presence` (the book's debugging aid); the dashboard
// itself never needs it.
import { Socket, Presence } from "/js/phoenix.mjs";

const CHART_WINDOW_MS = 10 * 60 * 1000;
const CHART_SAMPLE_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";
const UNKNOWN_PAGE = "(unknown)";
const OTHER_PAGES = "(other pages)";

/** The dashboard state, as last received (exposed for debugging and tests). */
const state = {
  seq: null,
  shoppers: 0,
  tabs: 0,
  pages: new Map(), // page (string, or null for unknown) -> tabs
  otherPages: 0,
  carts: new Map(), // item id (string) -> carts
  stock: new Map(), // item id (string) -> {available, level}
  released: new Map(), // product id (string) -> bool
  series: [], // [client time ms, shoppers]
  snapshots: 0,
  deltas: 0,
};
window.dashboard = state;

const $ = (id) => document.getElementById(id);
const formatCount = (n) => Number(n).toLocaleString("en-US");

// ---------------------------------------------------------------------------------------------
// Applying server payloads

function applySnapshot(snapshot) {
  state.seq = snapshot.seq;
  state.shoppers = snapshot.shoppers;
  state.tabs = snapshot.tabs;
  state.pages = new Map(snapshot.pages);
  state.otherPages = snapshot.other_pages || 0;
  state.carts = new Map(Object.entries(snapshot.carts || {}));
  state.stock = new Map(Object.entries(snapshot.stock || {}));
  state.released = new Map(Object.entries(snapshot.released || {}));
  state.snapshots += 1;
  seedSeries(snapshot.history);

  renderShoppers();
  renderPages();
  for (const counter of document.querySelectorAll(".admin-item-cart-count")) {
    counter.textContent = "0";
  }
  for (const [item, count] of state.carts) renderCartCount(item, count, false);
  for (const [item, stock] of state.stock) renderStock(item, stock);
  for (const [product, released] of state.released) renderReleased(product, released);
  scheduleChart();
}

function applyDelta(delta) {
  if (state.seq === null || delta.seq <= state.seq) return; // included in our snapshot
  if (delta.seq !== state.seq + 1) {
    requestSnapshot();
    return;
  }
  state.seq = delta.seq;
  state.deltas += 1;
  if (delta.shoppers !== undefined || delta.tabs !== undefined) {
    if (delta.shoppers !== undefined) {
      state.shoppers = delta.shoppers;
      state.series.push([Date.now(), state.shoppers]);
      scheduleChart();
    }
    if (delta.tabs !== undefined) state.tabs = delta.tabs;
    renderShoppers();
  }
  if (delta.pages || delta.other_pages !== undefined) {
    for (const [page, count] of delta.pages || []) {
      if (count === 0) state.pages.delete(page);
      else state.pages.set(page, count);
    }
    if (delta.other_pages !== undefined) state.otherPages = delta.other_pages;
    renderPages();
  }
  for (const [item, count] of Object.entries(delta.carts || {})) {
    if (count === 0) state.carts.delete(item);
    else state.carts.set(item, count);
    renderCartCount(item, count, true);
  }
  for (const [item, stock] of Object.entries(delta.stock || {})) {
    state.stock.set(item, stock);
    renderStock(item, stock);
  }
  for (const [product, released] of Object.entries(delta.released || {})) {
    state.released.set(product, released);
    renderReleased(product, released);
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering

function renderShoppers() {
  $("shopper-count").textContent = formatCount(state.shoppers);
  $("tab-count").textContent = formatCount(state.tabs);
}

function tile(count, label, extraClass) {
  const element = document.createElement("div");
  element.className = "tile";
  const number = document.createElement("span");
  number.className = "tile__count";
  number.textContent = formatCount(count);
  const text = document.createElement("span");
  text.className = "tile__label" + (extraClass ? ` ${extraClass}` : "");
  text.textContent = label; // page paths come from browsers: never parsed as HTML
  text.title = label;
  element.append(number, text);
  return element;
}

function renderPages() {
  const target = document.querySelector("#shoppers-by-page .target");
  const named = [...state.pages.entries()]
    .filter(([page]) => page !== null)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const tiles = named.map(([page, count]) => tile(count, page));
  if (state.pages.has(null)) {
    tiles.push(tile(state.pages.get(null), UNKNOWN_PAGE, "tile__label--unknown"));
  }
  if (state.otherPages > 0) {
    tiles.push(tile(state.otherPages, OTHER_PAGES, "tile__label--unknown"));
  }
  if (tiles.length === 0) {
    const empty = document.createElement("p");
    empty.className = "admin-empty";
    empty.textContent = "No shoppers yet.";
    tiles.push(empty);
  }
  target.replaceChildren(...tiles);
}

function renderCartCount(item, count, highlight) {
  const counter = $(`admin-item-cart-count-${item}`);
  if (!counter) return; // an item this page does not show (spec §19.6)
  counter.textContent = formatCount(count);
  renderOver(item);
  if (highlight) flash($(`admin-item-${item}`));
}

/** Warns on an item that more carts hold than there are units left (not all can buy it). */
function renderOver(item) {
  const line = $(`admin-item-${item}`);
  if (!line) return;
  const carts = state.carts.get(item) ?? 0;
  const available = state.stock.get(item)?.available;
  const over = available !== undefined && carts > available;
  line.classList.toggle("admin-item--over", over);
  const warning = line.querySelector(".admin-item__over");
  if (warning) warning.hidden = !over;
}

function renderStock(item, stock) {
  const available = $(`admin-item-available-${item}`);
  if (!available) return;
  available.textContent = formatCount(stock.available);
  const line = $(`admin-item-${item}`);
  if (!line) return;
  for (const name of [...line.classList]) {
    if (name.startsWith("admin-item--level-")) line.classList.remove(name);
  }
  line.classList.add(`admin-item--level-${stock.level}`);
  const dot = line.querySelector(".admin-item__level");
  if (dot) {
    dot.title = stock.level;
    dot.setAttribute("aria-label", `${stock.level} stock`);
  }
  renderOver(item);
}

function renderReleased(product, released) {
  for (const soon of document.querySelectorAll(`.product-soon-${product}`)) {
    soon.hidden = released;
  }
  const items = $(`admin-items-${product}`);
  if (items) items.hidden = !released;
}

function flash(element) {
  if (!element) return;
  element.classList.remove("admin-item--changed");
  void element.offsetWidth; // restart the animation
  element.classList.add("admin-item--changed");
}

// ---------------------------------------------------------------------------------------------
// Chart of unique shoppers (inline SVG)

function seedSeries(history) {
  const now = Date.now();
  const points = history?.shoppers ?? [];
  const step = history?.step_ms ?? CHART_SAMPLE_MS;
  // The last sample is at most one step old: place the history relative to this browser's
  // clock, so that a skewed server clock cannot misplace it.
  state.series = points.map((n, i) => [now - (points.length - 1 - i) * step, n]);
  state.series.push([now, state.shoppers]);
}

function trimSeries(now) {
  const start = now - CHART_WINDOW_MS;
  let first = 0;
  while (first < state.series.length - 1 && state.series[first + 1][0] <= start) first += 1;
  if (first > 0) state.series.splice(0, first);
}

function niceMax(value) {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const factor of [1, 2, 2.5, 5, 10]) {
    if (value <= factor * magnitude) return factor * magnitude;
  }
  return 10 * magnitude;
}

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

let chartPending = false;
function scheduleChart() {
  if (chartPending) return;
  chartPending = true;
  requestAnimationFrame(() => {
    chartPending = false;
    drawChart();
  });
}

function drawChart() {
  const chart = $("shopper-chart");
  if (!chart) return;
  // Draw in CSS pixels so that text is never stretched.
  const width = Math.max(chart.clientWidth, 240);
  const height = Math.max(chart.clientHeight, 120);
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const left = 44;
  const right = 14;
  const top = 12;
  const bottom = 22;
  const now = Date.now();
  trimSeries(now);
  const start = now - CHART_WINDOW_MS;
  const values = state.series.map(([, n]) => n);
  const max = niceMax(Math.max(0, ...values));
  const x = (t) => left + ((Math.max(t, start) - start) / CHART_WINDOW_MS) * (width - left - right);
  const y = (n) => top + (1 - n / max) * (height - top - bottom);

  const parts = [];
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const value = max * fraction;
    parts.push(svg("line", { class: "chart__grid", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
    parts.push(
      svg("text", { class: "chart__axis-label", x: left - 6, y: y(value) + 4, "text-anchor": "end" }, formatCount(Math.round(value))),
    );
  }
  // About 70 px per label, so that they never overlap (a phone gets fewer).
  const marks = width >= 480 ? [10, 8, 6, 4, 2, 0] : width >= 300 ? [10, 5, 0] : [10, 0];
  for (const minutes of marks) {
    const t = now - minutes * 60 * 1000;
    const label = minutes === 0 ? "now" : `-${minutes} min`;
    const anchor = minutes === 10 ? "start" : minutes === 0 ? "end" : "middle";
    parts.push(svg("text", { class: "chart__axis-label", x: x(t), y: height - 6, "text-anchor": anchor }, label));
  }

  if (state.series.length > 0) {
    // A step line: the count holds until the next change.
    let path = "";
    state.series.forEach(([t, n], i) => {
      path += i === 0 ? `M${x(t).toFixed(1)},${y(n).toFixed(1)}` : `H${x(t).toFixed(1)}V${y(n).toFixed(1)}`;
    });
    path += `H${x(now).toFixed(1)}`;
    const firstX = x(state.series[0][0]).toFixed(1);
    const area = `${path}V${y(0).toFixed(1)}H${firstX}Z`;
    parts.push(svg("path", { class: "chart__area", d: area }));
    parts.push(svg("path", { class: "chart__line", d: path }));
    parts.push(svg("circle", { class: "chart__dot", cx: x(now), cy: y(state.shoppers), r: 3.5 }));
  }
  chart.replaceChildren(...parts);
}

window.addEventListener("resize", scheduleChart);

setInterval(() => {
  if (state.seq === null) return;
  state.series.push([Date.now(), state.shoppers]);
  scheduleChart();
}, CHART_SAMPLE_MS);

// ---------------------------------------------------------------------------------------------
// Connection

function setStatus(kind, text) {
  const status = $("connection-status");
  status.className = `connection connection--${kind}`;
  status.textContent = text;
}

const socket = new Socket("/admin_socket", { params: { token: window.adminToken } });
// The page's token is valid for one day: only a page that old needs a reload to sign in again;
// otherwise the socket reconnects by itself and the channel rejoins with a fresh snapshot.
const TOKEN_LIFETIME_MS = 24 * 60 * 60 * 1000;
const loadedAt = Date.now();
socket.onError(() => {
  const expired = Date.now() - loadedAt > TOKEN_LIFETIME_MS - 60 * 1000;
  setStatus("down", expired ? "signed out — reload the page to sign in again" : "reconnecting…");
});
socket.connect();

const channel = socket.channel("admin:dashboard", {});
channel.on("aggregate", (snapshot) => {
  applySnapshot(snapshot);
  setStatus("live", "live"); // also after a reconnect's rejoin
});
channel.on("aggregate_delta", applyDelta);

let snapshotRequested = false;
function requestSnapshot() {
  if (snapshotRequested) return;
  snapshotRequested = true;
  channel
    .push("snapshot", {})
    .receive("ok", (snapshot) => {
      snapshotRequested = false;
      applySnapshot(snapshot);
    })
    .receive("error", () => (snapshotRequested = false))
    .receive("timeout", () => (snapshotRequested = false));
}

channel
  .join()
  .receive("ok", () => setStatus("live", "live"))
  .receive("error", (response) => {
    console.error("could not join admin:dashboard", response);
    setStatus("down", "could not join the dashboard");
  });

if (new URLSearchParams(location.search).has("presence")) {
  const tracker = socket.channel("admin:cart_tracker", {});
  const presence = new Presence(tracker);
  presence.onSync(() => console.debug("presence synced", presence.list().length, "shoppers"));
  window.presence = presence;
  tracker.join().receive("error", (response) => console.error("could not join admin:cart_tracker", response));
}
