// The demo page: plain DOM calls, and every piece of data goes in as text (never as HTML), so
// a product title holding markup or script shows as the characters it is.
"use strict";

const K = 8;
const $ = (id) => document.getElementById(id);
let current = null; // the shopper on show

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child); // strings become text nodes
  return node;
}

function say(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

async function api(path, options = {}) {
  const response = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || body.title || `HTTP ${response.status}`);
  return body;
}

function showHistory(history) {
  $("shopper-title").textContent = `Shopper ${history.user_id}` + (history.country ? ` · ${history.country}` : "");
  $("purchases").replaceChildren(
    ...history.purchases.map((p) =>
      el("li", {}, p.title, el("span", { className: "meta" }, ` · ${p.times_bought}× · ${p.last_bought.slice(0, 10)}`))),
  );
  $("cart").replaceChildren(
    ...(history.cart.length ? history.cart.map((i) => el("li", { className: "cart-item" }, i.title))
                            : [el("li", { className: "meta" }, "empty")]),
  );
  $("shopper").hidden = false;
}

function recCard(item) {
  const evidence = el("ul", { className: "evidence", hidden: true },
    ...(item.evidence || []).map((fact) => el("li", {}, fact.text)));
  const why = el("button", { className: "quiet why", type: "button", textContent: "why?" });
  why.setAttribute("aria-expanded", "false");
  why.addEventListener("click", () => {
    evidence.hidden = !evidence.hidden;
    why.setAttribute("aria-expanded", String(!evidence.hidden));
  });
  const add = el("button", { className: "add", type: "button", textContent: "add to cart" });
  add.addEventListener("click", () => addToCart(item, add));
  return el("li", { className: "rec" },
    el("div", { className: "title" }, `${item.rank}. ${item.title}`),
    el("div", { className: "meta" }, [item.price_text, item.theme].filter(Boolean).join(" · ")),
    el("p", { className: "reason" }, item.reason || "", el("span", { className: "writer" }, item.reason_writer || "")),
    el("div", { className: "actions" }, why, add),
    evidence);
}

function showRecommendations(response) {
  const versions = response.model_versions;
  $("versions").textContent = `ranker ${versions.ranker} · reasons ${versions.reason_writer} · source ${response.source}`;
  const cards = response.items.map(recCard);
  cards.forEach((card, n) => { card.dataset.itemId = String(response.items[n].item_id); });
  $("recs").replaceChildren(...cards);
  $("recommendations").hidden = false;
}

async function show(user) {
  current = user;
  say(`Loading shopper ${user}…`);
  const url = new URL(window.location);
  url.searchParams.set("user", user);
  history.replaceState(null, "", url);
  try {
    const query = new URLSearchParams({ user_id: user, k: String(K), with_reasons: "true" });
    const [shopper, recs] = await Promise.all([
      api(`/v1/shoppers/${encodeURIComponent(user)}/history`),
      api(`/v1/recommend?${query}`),
    ]);
    if (user !== current) return; // another shopper was picked meanwhile
    showHistory(shopper);
    showRecommendations(recs);
    say(`${recs.items.length} recommendations for shopper ${user}.`);
  } catch (error) {
    say(`Could not load shopper ${user}: ${error.message}`, true);
  }
}

async function addToCart(item, button) {
  button.disabled = true;
  try {
    // The demo's stand-in for a storefront backend, which holds the API key for /v1/events.
    await api("/demo/cart", { method: "POST", body: JSON.stringify({ user_id: current, item_id: item.item_id }) });
    say(`Added "${item.title}" to the cart; refreshing…`);
    await show(current);
  } catch (error) {
    say(`Could not add to the cart: ${error.message}`, true);
    button.disabled = false;
  }
}

async function loadSamples() {
  try {
    const { shoppers } = await api("/v1/shoppers/sample?n=10");
    $("samples").replaceChildren(el("span", { className: "meta" }, "Try:"),
      ...shoppers.map((s) => {
        const button = el("button", { type: "button", textContent: s.user_id, title: `${s.orders} orders, ${s.country || "?"}` });
        button.addEventListener("click", () => { $("user").value = s.user_id; show(s.user_id); });
        return button;
      }));
  } catch (error) {
    say(`Could not load sample shoppers: ${error.message}`, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("pick").addEventListener("submit", (event) => {
    event.preventDefault();
    show($("user").value.trim());
  });
  loadSamples();
  const user = new URLSearchParams(window.location.search).get("user");
  if (user) { $("user").value = user; show(user); }
});
