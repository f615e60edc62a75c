/* Buying in the room: the buy sheet, the flash-sale card, the purchase ticker and the
   stock on the card. Protocol: docs/protocol.md ("Buying in the room").
   - Opens on room.js's `room:buy` DOM event; talks over the room's own socket.
   - Every purchase carries a client-made idempotency key; a retry re-sends the same key,
     so a flaky network can never buy twice. Any change to the form makes a new key.
   - Prices, totals and stock always come from the server. Text is set with textContent. */
(function () {
  "use strict";

  // --- socket tap: room.js owns the socket; we listen to the frames it receives --------
  var NativeWS = window.WebSocket;
  if (NativeWS && !NativeWS.__ordersTap) {
    var Tapped = function (url, protocols) {
      var ws = protocols === undefined ? new NativeWS(url) : new NativeWS(url, protocols);
      if (String(url).indexOf("/ws/rooms/") !== -1) {
        ws.addEventListener("message", function (m) {
          var data;
          try { data = JSON.parse(m.data); } catch (e) { return; }
          if (data && typeof data.type === "string") document.dispatchEvent(new CustomEvent("orders:frame", { detail: data }));
        });
      }
      return ws;
    };
    Tapped.prototype = NativeWS.prototype;
    ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach(function (k) { Tapped[k] = NativeWS[k]; });
    Tapped.__ordersTap = true;
    window.WebSocket = Tapped;
  }

  var cfg, roomEl, sheetRoot, state = { stock: {}, sales: {}, clockSkew: 0 };
  var TEST_CARDS = [["4242 4242 4242 4242", "succeeds"], ["4000 0000 0000 0002", "declined"], ["4000 0000 0000 3220", "bank confirms"]];

  function $(sel, el) { return (el || document).querySelector(sel); }
  function f(name, el) { return (el || sheetRoot).querySelector('[data-f="' + name + '"]'); }
  function newKey() {
    if (window.crypto && crypto.randomUUID) return "buy-" + crypto.randomUUID();
    return "buy-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }
  function money(s) { return Number(s).toFixed(2); }
  function send(msg) { return window.LiveRoom && window.LiveRoom.send(msg); }

  // --- replies by ref ------------------------------------------------------------------
  var waiting = {};
  var refSeq = 0;
  function request(msg, timeoutMs) {
    var ref = "o" + (++refSeq) + "-" + Date.now().toString(36);
    msg.ref = ref;
    return new Promise(function (resolve, reject) {
      waiting[ref] = resolve;
      if (!send(msg)) { delete waiting[ref]; overHttp(msg).then(resolve, reject); return; }
      setTimeout(function () { if (waiting[ref]) { delete waiting[ref]; reject(new Error("timeout")); } }, timeoutMs || 10000);
    });
  }

  // While the room's socket is closed (the network dropped, or live updates are down with
  // the server's Redis), a quote or a purchase goes over HTTP instead: the same service and
  // the same idempotency key, so a retry on either path never buys twice.
  function overHttp(msg) {
    var headers = { Accept: "application/json" };
    if (msg.type === "buy.quote") {
      var query = new URLSearchParams({ item: msg.item, quantity: msg.quantity });
      if (msg.sale) query.set("sale", msg.sale);
      return fetch(cfg.quoteUrl + "?" + query, { credentials: "same-origin", headers: headers }).then(asJson);
    }
    if (msg.type === "buy") {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";
      return fetch(cfg.buyUrl, { method: "POST", credentials: "same-origin", headers: headers, body: JSON.stringify(msg) }).then(asJson);
    }
    return Promise.reject(new Error("offline"));
  }
  function asJson(response) {
    return response.json().then(function (body) { body.ref = null; return body; });
  }

  document.addEventListener("orders:frame", function (e) {
    var ev = e.detail;
    if (ev.ref && waiting[ev.ref]) { var done = waiting[ev.ref]; delete waiting[ev.ref]; done(ev); return; }
    switch (ev.type) {
      case "order.update": if (sheet && sheet.pendingRef && ev.ref === sheet.pendingRef) { sheet.pendingRef = null; onResult(ev); } break;
      case "stock": setStock(ev.item, ev.sale, ev.left); break;
      case "purchase": ticker(ev); break;
      case "flash_sale": upsertSale(ev.sale); break;
      case "flash_sale.sold_out": if (state.sales[ev.sale]) { state.sales[ev.sale].sold_out = true; state.sales[ev.sale].left = 0; renderFlash(); } break;
      case "snapshot": case "pin": case "shelf": setTimeout(function () { applyStock(); loadOffers(); }, 0); break;
    }
  });

  // --- stock on the card and the shelf ------------------------------------------------
  function setStock(item, sale, left) {
    if (sale) { if (state.sales[sale]) { state.sales[sale].left = left; renderFlash(); } return; }
    state.stock[item] = left;
    applyStock();
  }
  function applyStock() {
    var card = document.getElementById("pinned-card");
    if (card) {
      var btn = card.querySelector('[data-action="buy"]');
      var id = btn && Number(btn.dataset.itemId);
      if (id && state.stock[id] !== undefined) {
        var left = state.stock[id], el = card.querySelector('[data-field="stock"]');
        if (el) { el.textContent = left <= 0 ? "Sold out" : (left <= 10 ? "Only " + left + " left" : left + " left"); el.dataset.state = left <= 0 ? "sold_out" : (left <= 10 ? "low" : "in_stock"); }
        btn.disabled = left <= 0;
        btn.textContent = left <= 0 ? "Sold out" : "Buy";
      }
    }
    document.querySelectorAll('#shelf-list [data-action="buy"]').forEach(function (b) {
      var left = state.stock[Number(b.dataset.itemId)];
      if (left !== undefined) { b.disabled = left <= 0; b.textContent = left <= 0 ? "Sold out" : "Buy"; }
    });
  }
  function loadOffers() {
    fetch(cfg.offersUrl, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
      if (!data) return;
      Object.keys(data.stock).forEach(function (k) { state.stock[Number(k)] = data.stock[k]; });
      data.flash_sales.forEach(upsertSale);
      applyStock();
    }).catch(function () {});
  }

  // --- flash sale card -----------------------------------------------------------------
  var flashTimer = null;
  function upsertSale(sale) {
    state.clockSkew = Date.parse(sale.server_now) - Date.now();
    state.sales[sale.id] = sale;
    renderFlash();
    if (!flashTimer) flashTimer = setInterval(renderFlash, 250);
  }
  function currentSale() {
    var now = Date.now() + state.clockSkew, best = null;
    Object.keys(state.sales).forEach(function (k) {
      var s = state.sales[k];
      if (Date.parse(s.ends_at) <= now - 5000) return;       // over: keep "ended" for 5 s
      if (!best || Date.parse(s.starts_at) < Date.parse(best.starts_at)) best = s;
    });
    return best;
  }
  function clock(ms) {
    var t = Math.max(0, Math.ceil(ms / 1000)), h = Math.floor(t / 3600), m = Math.floor(t % 3600 / 60), s = t % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return (h ? h + ":" + two(m) : two(m)) + ":" + two(s);
  }
  function renderFlash() {
    var sale = currentSale(), card = document.getElementById("flash-card");
    if (!sale) { if (card) card.remove(); if (flashTimer) { clearInterval(flashTimer); flashTimer = null; } return; }
    if (!card) {
      var tpl = document.getElementById("flash-card-tpl");
      card = tpl.content.firstElementChild.cloneNode(true);
      var panel = document.querySelector(".room-panel") || roomEl;
      panel.insertBefore(card, panel.firstChild);
      f("buy", card).addEventListener("click", function () {
        var s = currentSale(); if (s) openSheet({ id: s.item, title: s.title || "" }, s.id);
      });
    }
    var now = Date.now() + state.clockSkew, starts = Date.parse(sale.starts_at), ends = Date.parse(sale.ends_at);
    var item = (window.LiveRoom && (window.LiveRoom.state.shelf || []).find(function (i) { return i.id === sale.item; })) || {};
    f("title", card).textContent = item.title || "";
    f("price", card).textContent = sale.sale_price;
    f("was", card).textContent = item.live_price || "";
    var soldOut = sale.sold_out || sale.left <= 0, buy = f("buy", card);
    card.dataset.phase = soldOut ? "sold_out" : (now < starts ? "upcoming" : (now >= ends ? "over" : "running"));
    if (soldOut) { f("clock", card).textContent = "Sold out"; buy.disabled = true; buy.textContent = "Sold out"; }
    else if (now < starts) { f("clock", card).textContent = "Starts in " + clock(starts - now); buy.disabled = true; buy.textContent = "Starting soon"; }
    else if (now >= ends) { f("clock", card).textContent = "Ended"; buy.disabled = true; buy.textContent = "Sale over"; }
    else { f("clock", card).textContent = "Ends in " + clock(ends - now); buy.disabled = false; buy.textContent = "Buy now"; }
    f("bar", card).style.width = Math.max(0, Math.min(100, 100 * sale.left / sale.quantity)) + "%";
    f("left", card).textContent = soldOut ? "All " + sale.quantity + " sold" : sale.left + " of " + sale.quantity + " left · limit " + sale.per_user_limit + " each";
  }

  // --- purchase ticker -----------------------------------------------------------------
  var tickerQueue = [], tickerBusy = false;
  function ticker(ev) {
    if (tickerQueue.length < 5) tickerQueue.push(ev);
    if (!tickerBusy) nextTicker();
  }
  function nextTicker() {
    var ev = tickerQueue.shift();
    if (!ev) { tickerBusy = false; return; }
    tickerBusy = true;
    var stage = document.querySelector(".room-stage") || roomEl;
    var el = document.createElement("div");
    el.className = "ticker";
    el.setAttribute("role", "status");
    el.textContent = ev.who + " just bought " + ev.quantity + " × " + ev.title;
    stage.appendChild(el);
    setTimeout(function () { el.classList.add("out"); }, 2400);
    setTimeout(function () { el.remove(); nextTicker(); }, 2800);
  }

  // --- the buy sheet -------------------------------------------------------------------
  var sheet = null;
  function closeSheet() {
    if (!sheet) return;
    if (sheet.poll) clearInterval(sheet.poll);
    sheetRoot.textContent = "";
    sheetRoot.classList.remove("open", "entering");
    document.removeEventListener("keydown", onKey);
    if (sheet.opener && sheet.opener.focus) sheet.opener.focus();
    sheet = null;
  }
  function onKey(e) { if (e.key === "Escape") closeSheet(); }

  function openSheet(item, saleId, opener) {
    if (cfg.authenticated !== "true") { location.href = cfg.loginUrl; return; }
    closeSheet();
    sheetRoot.appendChild(document.getElementById("buy-sheet-tpl").content.cloneNode(true));
    sheetRoot.classList.add("open", "entering");
    setTimeout(function () { sheetRoot.classList.remove("entering"); }, 260);
    sheet = { item: item.id, sale: saleId || null, qty: 1, max: 1, key: newKey(), quote: null, busy: false, opener: opener || document.activeElement };
    f("title").textContent = item.title || "";
    if (item.image) f("image").src = item.image; else f("image").hidden = true;
    f("add-address").href = cfg.addressUrl;
    var cards = f("cards");
    TEST_CARDS.forEach(function (c, i) {
      var b = document.createElement("button");
      b.type = "button"; b.className = "chip"; b.textContent = c[0].slice(-4) + " " + c[1];
      b.title = c[0];
      b.addEventListener("click", function () { $("#card-number", sheetRoot).value = c[0]; changed(); });
      cards.appendChild(b);
      if (i < TEST_CARDS.length - 1) cards.appendChild(document.createTextNode(" "));
    });
    sheetRoot.querySelectorAll("[data-close]").forEach(function (b) { b.addEventListener("click", closeSheet); });
    sheetRoot.querySelectorAll("[data-step]").forEach(function (b) {
      b.addEventListener("click", function () {
        var q = sheet.qty + Number(b.dataset.step);
        if (q >= 1 && q <= sheet.max) { sheet.qty = q; changed(); quote(); }
      });
    });
    $("#card-number", sheetRoot).addEventListener("input", changed);
    f("addresses").addEventListener("change", changed);
    f("confirm").addEventListener("click", confirm);
    f("view-order").addEventListener("click", function () { showOrder(sheet.order); });
    document.addEventListener("keydown", onKey);
    setBusy(true, "Loading…");
    quote();
    setTimeout(function () { var x = $(".sheet-x", sheetRoot); if (x) x.focus(); }, 30);
  }

  function changed() { if (sheet) { sheet.key = newKey(); showError(""); } }
  function showError(text) { var el = f("error"); el.textContent = text; el.hidden = !text; }
  function setBusy(busy, label) {
    sheet.busy = busy;
    var b = f("confirm");
    b.disabled = busy || !sheet.quote;
    b.classList.toggle("loading", busy);
    b.textContent = label || (sheet.quote ? "Pay ¥" + money(sheet.quote.total) : "Pay");
  }

  function quote() {
    var s = sheet;
    request({ type: "buy.quote", item: s.item, quantity: s.qty, sale: s.sale }).then(function (q) {
      if (sheet !== s) return;
      if (!q.ok) { s.quote = null; setBusy(false, "Can't buy now"); showError(q.message); f("confirm").disabled = true; return; }
      s.quote = q; s.max = Math.max(1, q.max_quantity); s.qty = q.quantity;
      f("title").textContent = q.title;
      if (q.image) { f("image").src = q.image; f("image").hidden = false; }
      f("unit").textContent = q.unit_price; f("list").textContent = q.list_price;
      f("sale-badge").hidden = !q.sale;
      f("left").textContent = q.left <= 10 ? "Only " + q.left + " left" : q.left + " in stock";
      f("qty").textContent = q.quantity; f("qty2").textContent = q.quantity;
      f("limit").textContent = "Limit " + q.max_quantity + (q.max_quantity === 1 ? " for you" : " for you");
      f("subtotal").textContent = q.subtotal; f("total").textContent = q.total; f("discount").textContent = q.discount;
      f("save-row").hidden = Number(q.discount) <= 0;
      f("hold").textContent = q.hold_minutes;
      renderAddresses(q.addresses);
      setBusy(false);
      if (q.left <= 0) { f("confirm").disabled = true; f("confirm").textContent = "Sold out"; }
    }).catch(function () { if (sheet === s) { setBusy(false, "Pay"); showError("We couldn't reach the room. Check your connection and try again."); } });
  }

  function renderAddresses(list) {
    var box = f("addresses"), prev = box.querySelector("input:checked");
    var chosen = prev ? Number(prev.value) : null;
    box.textContent = "";
    if (!list.length) {
      var p = document.createElement("p"); p.className = "small muted"; p.textContent = "Add an address to ship to."; box.appendChild(p);
      return;
    }
    list.forEach(function (a, i) {
      var label = document.createElement("label"); label.className = "addr";
      var input = document.createElement("input"); input.type = "radio"; input.name = "address"; input.value = a.id;
      input.checked = chosen ? chosen === a.id : (a.default || i === 0);
      var text = document.createElement("span");
      var who = document.createElement("strong"); who.textContent = a.recipient;
      var line = document.createElement("span"); line.className = "small muted"; line.textContent = a.line;
      text.appendChild(who); text.appendChild(line);
      label.appendChild(input); label.appendChild(text); box.appendChild(label);
    });
  }

  function confirm() {
    if (!sheet || sheet.busy || !sheet.quote) return;
    var addr = f("addresses").querySelector("input:checked");
    var card = $("#card-number", sheetRoot).value.trim();
    if (!addr) { showError("Choose where to ship it, or add an address."); return; }
    if (card.replace(/\D/g, "").length < 12) { showError("Enter your card number (sandbox: tap a test card below)."); $("#card-number", sheetRoot).focus(); return; }
    var s = sheet;
    var msg = { type: "buy", item: s.item, sale: s.sale, quantity: s.qty, address: Number(addr.value), card: card,
                key: s.key, expected_unit_price: s.quote.unit_price };
    setBusy(true, "Paying…");
    showError("");
    var attempt = function (tries) {
      request(Object.assign({}, msg), 12000).then(function (r) { if (sheet === s) onResult(r); }).catch(function () {
        if (sheet !== s) return;
        if (tries > 0) { setTimeout(function () { attempt(tries - 1); }, 1500); return; }   // same key: never a second order
        setBusy(false); showError("No answer yet. Tap Pay again: you won't be charged twice.");
      });
    };
    attempt(2);
  }

  function onResult(r) {
    if (r.ok && r.code === "processing") {          // reserved; the payment's answer follows on the socket
      sheet.pendingRef = r.ref;
      setBusy(true, "Paying…");
      var s = sheet;
      setTimeout(function () { if (sheet === s && s.pendingRef === r.ref) { s.pendingRef = null; watch(r.order); done(Object.assign({}, r, { code: "awaiting_confirmation", message: "Your order is reserved; the payment is still going through." })); } }, 15000);
      return;
    }
    if (r.ok) { done(r); return; }
    setBusy(false);
    sheet.key = newKey();   // that attempt is over: the next tap is a new purchase
    if (r.code === "login_required") { location.href = cfg.loginUrl; return; }
    if (r.code === "price_changed" || r.code === "sold_out" || r.code === "limit_reached") quote();
    showError(r.message || "That didn't work. Please try again.");
  }

  function done(r) {
    sheet.order = r.order;
    f("form-view").hidden = true;
    f("done-view").hidden = false;
    f("done-number").textContent = "Order " + r.order.number + " · ¥" + r.order.total;
    if (r.code === "paid") {
      f("done-title").textContent = "Order confirmed";
      f("done-text").textContent = r.message;
    } else {
      f("done-icon").textContent = "…"; f("done-icon").classList.add("pending");
      f("done-title").textContent = "Waiting for your bank";
      f("done-text").textContent = r.message;
      watch(r.order);
    }
    f("view-order").focus();
  }

  function watch(order) {
    var s = sheet;
    s.poll = setInterval(function () {
      fetch(order.url + "status", { credentials: "same-origin" }).then(function (x) { return x.json(); }).then(function (st) {
        if (sheet !== s || st.order.status === "pending_payment") return;
        clearInterval(s.poll); s.poll = null;
        var ok = st.order.status === "paid";
        f("done-icon").textContent = ok ? "✓" : "!";
        f("done-icon").classList.remove("pending"); f("done-icon").classList.toggle("bad", !ok);
        f("done-title").textContent = ok ? "Order confirmed" : st.order.status_label;
        f("done-text").textContent = ok ? "Your bank confirmed the payment. We'll let you know when it ships." :
          (st.order.status === "expired" ? "Your reservation expired, so the items went back on sale." : "The payment didn't go through. No money was taken.");
      }).catch(function () {});
    }, 1500);
  }

  function showOrder(order) {
    if (!order) return;
    var view = f("order-view");
    fetch(order.url + "?embed=1", { credentials: "same-origin" }).then(function (x) { return x.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      view.textContent = "";
      var back = document.createElement("button"); back.type = "button"; back.className = "btn ghost small"; back.textContent = "← Back to the room";
      back.addEventListener("click", closeSheet);
      view.appendChild(back);
      Array.prototype.forEach.call(doc.body.childNodes, function (n) { view.appendChild(document.importNode(n, true)); });
      f("done-view").hidden = true; view.hidden = false;
    });
  }

  function init() {
    roomEl = document.getElementById("room");
    var el = document.getElementById("orders-room");
    if (!roomEl || !el) return;
    cfg = el.dataset;
    sheetRoot = document.getElementById("buy-sheet-root");
    roomEl.addEventListener("room:buy", function (e) {
      var d = e.detail || {}, item = d.item || {};
      var running = currentSale();
      var saleId = running && running.item === item.id && Date.parse(running.starts_at) <= Date.now() + state.clockSkew ? running.id : null;
      openSheet(item, saleId, e.target);
    });
    loadOffers();
    window.LiveOrders = { open: openSheet, state: state };
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
