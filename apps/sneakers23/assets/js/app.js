// Sneakers23 shop script (spec §11.3–11.4): live product updates and the shared cart.
// Served as an ES module; imports the official phoenix client embedded in the server.
import { Socket } from "/js/phoenix.mjs";

const STORED_CART = "storedCart";

const socket = new Socket("/product_socket", {});

// ---- What the shopper is told: errors, the offline state, announcements -------------------

const errorBox = document.getElementById("shop-error");
const banner = document.getElementById("connection-banner");
const announcer = document.getElementById("shop-announcer");
let errorTimer = null;

/** Shows `message` at the top of the page (role=alert) for a while. */
function showError(message) {
  if (!errorBox) return;
  errorBox.textContent = message;
  errorBox.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => (errorBox.hidden = true), 8000);
}

/** Tells screen readers what changed (aria-live region), without showing anything. */
function announce(message) {
  if (announcer) announcer.textContent = message;
}

let offline = false;
function setOffline(value) {
  if (offline === value) return;
  offline = value;
  if (banner) banner.hidden = !value;
  document.body.classList.toggle("is-offline", value);
  if (!value) announce("Back online.");
}

// Leaving the page closes the socket too: that is not being offline.
let leaving = false;
window.addEventListener("pagehide", () => (leaving = true));
socket.onOpen(() => setOffline(false));
socket.onError(() => !leaving && setOffline(true));
socket.onClose(() => !leaving && setOffline(true));
socket.connect();

/** What a shopper reads for a refused cart operation (the server's error reply `{reason: code}`). */
const REFUSALS = {
  duplicate_item: "That size is already in your cart.",
  cart_full: "Your cart is full: remove an item to add another.",
  not_found: "That item is no longer in your cart.",
  invalid_item: "That size does not exist.",
  not_released: "That shoe is not released yet.",
  out_of_stock: "Sorry, that size just sold out.",
};

// ---- Products: join product:<id> for each listing that names a product -------------------

const LEVEL_WORDS = { low: "last few", medium: "selling fast", out: "sold out", high: "" };

function onReleased(productId, { size_html }) {
  document.querySelectorAll(`.product-soon-${productId}`).forEach((el) => {
    el.outerHTML = size_html;
  });
  markCartSizes();
  const name = document.querySelector(`.product-listing[data-product-id="${productId}"] .product-listing__name`);
  announce(`${name ? name.textContent : "A shoe"} is released: pick a size.`);
}

/** The accessible name of a size button: product, size, stock level, cart state. */
function labelSize(button) {
  const level = [...button.classList]
    .find((name) => name.startsWith("size-container__entry--level-"))
    ?.slice("size-container__entry--level-".length);
  const parts = [`${button.dataset.productName}, size ${button.dataset.size}`];
  if (LEVEL_WORDS[level]) parts.push(LEVEL_WORDS[level]);
  if (button.getAttribute("aria-pressed") === "true") parts.push("in your cart");
  button.setAttribute("aria-label", parts.join(", "));
}

function onStockChange({ item_id, level }) {
  document.querySelectorAll(".size-container__entry").forEach((button) => {
    if (button.value !== String(item_id)) return;
    [...button.classList]
      .filter((name) => name.startsWith("size-container__entry--level-"))
      .forEach((name) => button.classList.remove(name));
    button.classList.add(`size-container__entry--level-${level}`);
    button.disabled = level === "out";
    const word = button.querySelector(".size-container__level");
    if (word) word.textContent = level === "out" ? "" : LEVEL_WORDS[level] || "";
    labelSize(button);
    if (level === "out" || level === "low") {
      announce(`${button.dataset.productName} size ${button.dataset.size}: ${LEVEL_WORDS[level]}.`);
    }
  });
}

document.querySelectorAll(".product-listing[data-product-id]").forEach((listing) => {
  const productId = listing.dataset.productId;
  const channel = socket.channel(`product:${productId}`, {});
  channel.on("released", (payload) => onReleased(productId, payload));
  channel.on("stock_change", onStockChange);
  // data-live marks a listing whose live updates are flowing (styling and tests rely on it).
  channel.onError(() => delete listing.dataset.live);
  channel
    .join()
    .receive("ok", () => (listing.dataset.live = "true"))
    .receive("error", () => showError("Live updates of this shoe are not available. Reload the page to try again."));
});

// ---- Cart: one channel per tab on cart:<cart id>, shared by all tabs of the shopper --------

const escapeHtml = (value) =>
  String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function cartItemHtml(item) {
  const out = item.out_of_stock ? " cart-item-out" : "";
  const name = `${item.brand} ${item.name}, size ${item.size}`;
  return `<li class="cart-item${out}" data-cart-item-id="${escapeHtml(item.id)}">
  <button type="button" class="cart-item__remove" data-item-id="${escapeHtml(item.id)}" aria-label="Remove ${escapeHtml(name)}" title="Remove">&times;</button>
  <span class="cart-item__name">${escapeHtml(item.brand)} <b>${escapeHtml(item.name)}</b></span>
  <span class="cart-item__price">$${escapeHtml(item.price_usd)}</span>
  <span class="cart-item__size">Size ${escapeHtml(item.size)}${item.out_of_stock ? " · sold out" : ""}</span>
</li>`;
}

/** The checkout page (its `main` lists the item ids it was rendered for), if this is one. */
const checkoutPage = document.querySelector("main.checkout[data-item-ids]");
// Once PURCHASE is pressed, the emptied cart that follows must not reload this page.
let purchasing = false;
document.addEventListener("submit", (event) => {
  if (event.target.closest(".checkout__payment")) purchasing = true;
});

/**
 * The cart panel. Sold-out items are listed but not counted in the subtotal. On the checkout
 * page the panel has no CHECKOUT button (the page is the checkout).
 */
export function renderCartHtml(cart, { checkout = false } = {}) {
  const available = cart.items.filter((item) => !item.out_of_stock);
  const subtotal = available.reduce((sum, item) => sum + item.price_usd, 0);
  const excluded = cart.items.length - available.length;
  const note = excluded > 0 ? `<div class="cart__note">${excluded} sold-out item${excluded > 1 ? "s" : ""} not counted</div>` : "";
  const button = checkout ? "" : `<button type="submit" class="cart__checkout">CHECKOUT</button>`;
  return `<form class="cart${checkout ? " cart--checkout" : ""}" action="/checkout" method="GET" aria-label="Cart">
  <input type="hidden" name="serialized_cart" value="${escapeHtml(cart.serialized)}">
  <div class="cart__header"><h2 class="cart__title">Cart</h2> <span class="cart__count" aria-label="${cart.items.length} items">${cart.items.length}</span></div>
  <ul class="cart__items">${cart.items.map(cartItemHtml).join("")}</ul>
  <div class="cart__subtotal"><span>Subtotal</span><span>$${subtotal}</span></div>${note}
  ${button}
</form>`;
}

/** Marks the size buttons of the items in the cart (aria-pressed and a visible tick). */
let inCart = new Set();
function markCartSizes() {
  document.querySelectorAll(".size-container__entry").forEach((button) => {
    const pressed = inCart.has(button.value);
    button.setAttribute("aria-pressed", String(pressed));
    labelSize(button);
  });
}

const sameIds = (a, b) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

let lastCount = null;
function renderCart(cart) {
  if (typeof cart.serialized === "string") {
    localStorage.setItem(STORED_CART, cart.serialized);
  }
  const items = cart.items || [];
  const ids = items.map((item) => String(item.id));
  // The checkout page shows the cart it was opened with: when the cart changes (an item
  // removed here or in another tab), show the checkout of the new cart instead.
  if (checkoutPage && !purchasing) {
    const shown = checkoutPage.dataset.itemIds ? checkoutPage.dataset.itemIds.split(",") : [];
    if (!sameIds(shown, ids) && typeof cart.serialized === "string") {
      location.replace(`/checkout?serialized_cart=${encodeURIComponent(cart.serialized)}`);
      return;
    }
  }
  inCart = new Set(ids);
  markCartSizes();
  const container = document.getElementById("cart-container");
  if (container) {
    container.innerHTML = items.length > 0 ? renderCartHtml(cart, { checkout: !!checkoutPage }) : "";
  }
  if (lastCount !== null && lastCount !== items.length) {
    announce(`Cart: ${items.length} item${items.length === 1 ? "" : "s"}.`);
  }
  lastCount = items.length;
}

let cartChannel = null;
if (window.cartId) {
  // A function, so every (re)join sends the latest stored cart (spec §9.2).
  cartChannel = socket.channel(`cart:${window.cartId}`, () => ({
    serialized: localStorage.getItem(STORED_CART) ?? undefined,
    page: location.pathname,
  }));
  cartChannel.on("cart", renderCart);
  const container = document.getElementById("cart-container");
  cartChannel.onError(() => container && delete container.dataset.live);
  cartChannel
    .join()
    .receive("ok", () => container && (container.dataset.live = "true"))
    .receive("error", () => showError("Your cart could not be loaded. Reload the page to try again."));
}

function pushCart(event, itemId) {
  if (!cartChannel) return;
  if (!socket.isConnected() || offline) {
    showError("You are offline: your cart cannot change until the connection is back.");
    return;
  }
  cartChannel
    .push(event, { item_id: itemId })
    .receive("ok", (cart) => {
      if (errorBox) errorBox.hidden = true;
      renderCart(cart);
    })
    .receive("error", (reply) => showError(REFUSALS[reply?.reason] || "The store refused that change."))
    .receive("timeout", () => showError("The store did not answer. Check your connection and try again."));
}

document.addEventListener("click", (event) => {
  const size = event.target.closest(".size-container__entry");
  if (size) {
    event.preventDefault();
    if (!size.disabled) pushCart("add_item", size.value);
    return;
  }
  const remove = event.target.closest(".cart-item__remove");
  if (remove) {
    event.preventDefault();
    pushCart("remove_item", remove.dataset.itemId);
  }
});
