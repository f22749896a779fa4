// Sneakers23 shop script (spec §11.3–11.4): live product updates and the shared cart.
// Served as an ES module; imports the official phoenix client embedded in the server.
import { Socket } from "/js/phoenix.mjs";

const STORED_CART = "storedCart";

const socket = new Socket("/product_socket", {});
socket.connect();

// ---- Products: join product:<id> for each listing that names a product -------------------

function onReleased(productId, { size_html }) {
  document.querySelectorAll(`.product-soon-${productId}`).forEach((el) => {
    el.outerHTML = size_html;
  });
}

function onStockChange({ item_id, level }) {
  document.querySelectorAll(".size-container__entry").forEach((button) => {
    if (button.value !== String(item_id)) return;
    [...button.classList]
      .filter((name) => name.startsWith("size-container__entry--level-"))
      .forEach((name) => button.classList.remove(name));
    button.classList.add(`size-container__entry--level-${level}`);
    button.disabled = level === "out";
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
    .receive("error", (error) => console.error(`join product:${productId} failed`, error));
});

// ---- Cart: one channel per tab on cart:<cart id>, shared by all tabs of the shopper --------

const escapeHtml = (value) =>
  String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function cartItemHtml(item) {
  const out = item.out_of_stock ? " cart-item-out" : "";
  return `<li class="cart-item${out}" data-cart-item-id="${escapeHtml(item.id)}">
  <button type="button" class="cart-item__remove" data-item-id="${escapeHtml(item.id)}" title="Remove">&times;</button>
  <span class="cart-item__name">${escapeHtml(item.brand)} <b>${escapeHtml(item.name)}</b></span>
  <span class="cart-item__price">$${escapeHtml(item.price_usd)}</span>
  <span class="cart-item__size">Size ${escapeHtml(item.size)}${item.out_of_stock ? " · sold out" : ""}</span>
</li>`;
}

export function renderCartHtml(cart) {
  const subtotal = cart.items.reduce((sum, item) => sum + item.price_usd, 0);
  return `<form class="cart" action="/checkout" method="GET">
  <input type="hidden" name="serialized_cart" value="${escapeHtml(cart.serialized)}">
  <div class="cart__header"><span>Cart</span> <span class="cart__count">${cart.items.length}</span></div>
  <ul class="cart__items">${cart.items.map(cartItemHtml).join("")}</ul>
  <div class="cart__subtotal"><span>Subtotal</span><span>$${subtotal}</span></div>
  <button type="submit" class="cart__checkout">CHECKOUT</button>
</form>`;
}

function renderCart(cart) {
  console.log("Cart received", cart);
  if (typeof cart.serialized === "string") {
    localStorage.setItem(STORED_CART, cart.serialized);
  }
  const container = document.getElementById("cart-container");
  if (!container) return;
  container.innerHTML = cart.items && cart.items.length > 0 ? renderCartHtml(cart) : "";
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
    .receive("error", (error) => console.error("join cart failed", error));
}

function pushCart(event, itemId) {
  if (!cartChannel) return;
  cartChannel
    .push(event, { item_id: itemId })
    .receive("ok", renderCart)
    .receive("error", (error) => console.error(`${event} ${itemId} failed`, error))
    .receive("timeout", () => console.error(`${event} ${itemId} timed out`));
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
