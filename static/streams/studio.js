/* Studio control room: catalog search for the shelf, pin/unpin over the room socket,
   the live panel (viewers from the socket's counts, peak and chat rate from stats.json). */
(function () {
  "use strict";
  var root = document.getElementById("studio");
  if (!root) return;
  var $ = function (id) { return document.getElementById(id); };
  var csrf = (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";
  var ws = null, attempt = 0, v = -1;

  function setConn(kind, text) { var el = $("conn"); el.dataset.state = kind; el.textContent = text; }
  function send(msg) { if (ws && ws.readyState === 1) { ws.send(JSON.stringify(msg)); return true; } return false; }

  function connect() {
    setConn("connecting", attempt ? "Reconnecting…" : "Connecting…");
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.wsPath);
    ws.onmessage = function (e) {
      var ev; try { ev = JSON.parse(e.data); } catch (err) { return; }
      if (ev.type === "snapshot") { v = ev.v; attempt = 0; setConn("live", ""); showPinned(ev.pinned && ev.pinned.id); counts(ev); return; }
      if (ev.type === "counts") counts(ev);
      if (ev.type === "pin") showPinned(ev.item.id);
      if (ev.type === "unpin") showPinned(null);
      if (ev.type === "error") flash(ev.message, true);
    };
    ws.onclose = function () {
      attempt += 1;
      setConn("reconnecting", "Reconnecting…");
      setTimeout(connect, Math.random() * Math.min(30000, 500 * Math.pow(2, attempt)) + 250);
    };
  }

  function counts(ev) { $("panel-viewers").textContent = ev.viewers; $("panel-likes").textContent = ev.likes; }

  function showPinned(id) {
    document.querySelectorAll("tr[data-item-id]").forEach(function (tr) {
      var pinned = Number(tr.dataset.itemId) === id;
      tr.classList.toggle("is-pinned", pinned);
      var pin = tr.querySelector(".pin-btn"), unpin = tr.querySelector(".unpin-btn");
      if (pin) pin.hidden = pinned;
      if (unpin) unpin.hidden = !pinned;
    });
  }

  function flash(text, isError) {
    var box = document.querySelector(".messages");
    if (!box) { box = document.createElement("div"); box.className = "messages"; box.setAttribute("role", "status"); root.prepend(box); }
    var div = document.createElement("div"); div.className = "alert " + (isError ? "error" : "success"); div.textContent = text;
    box.appendChild(div); setTimeout(function () { div.remove(); }, 5000);
  }

  root.addEventListener("click", function (e) {
    var pin = e.target.closest("[data-pin]"), unpin = e.target.closest("[data-unpin]");
    if (pin && !send({ type: "pin", item_id: Number(pin.dataset.pin) })) flash("Not connected yet; try again in a moment.", true);
    if (unpin && !send({ type: "unpin" })) flash("Not connected yet; try again in a moment.", true);
    var copy = e.target.closest("[data-copy]");
    if (copy) {
      var input = $(copy.dataset.copy);
      (navigator.clipboard ? navigator.clipboard.writeText(input.value) : Promise.reject()).then(
        function () { copy.textContent = "Copied"; setTimeout(function () { copy.textContent = "Copy"; }, 1500); },
        function () { input.type = "text"; input.select(); });
    }
    var reveal = e.target.closest("[data-reveal]");
    if (reveal) { var key = $(reveal.dataset.reveal); key.type = key.type === "password" ? "text" : "password"; reveal.textContent = key.type === "password" ? "Show" : "Hide"; }
  });

  // --- catalog search for the shelf builder ----------------------------------------
  var search = $("product-search"), results = $("search-results"), timer = null;
  function renderResults(data) {
    results.textContent = "";
    if (!data.results.length) { var li = document.createElement("li"); li.className = "muted small"; li.textContent = "No sellable products match."; results.appendChild(li); return; }
    data.results.forEach(function (p) {
      var li = document.createElement("li");
      var img = document.createElement("img"); img.src = p.image || ""; img.alt = "";
      var body = document.createElement("div");
      var t = document.createElement("strong"); t.className = "small"; t.textContent = p.title;
      var meta = document.createElement("div"); meta.className = "tiny muted";
      meta.textContent = "List ¥" + p.list_price + " · floor ¥" + p.floor + " · " + p.stock + " in stock";
      body.append(t, meta);
      var form = document.createElement("form"); form.method = "post"; form.action = root.dataset.addUrl;
      if (p.on_shelf) { var b = document.createElement("span"); b.className = "badge ok"; b.textContent = "On shelf"; form.appendChild(b); }
      else {
        form.innerHTML = '<input type="hidden" name="csrfmiddlewaretoken"><input type="hidden" name="product_id"><input type="hidden" name="back" value="shelf">' +
          '<input type="text" inputmode="decimal" name="live_price" aria-label="Live price" required><button class="btn small" type="submit">Add</button>';
        form.querySelector("[name=csrfmiddlewaretoken]").value = csrf;
        form.querySelector("[name=product_id]").value = p.id;
        form.querySelector("[name=live_price]").value = p.list_price;
        form.querySelector("[name=live_price]").placeholder = p.floor + "–" + p.list_price;
      }
      li.append(img, body, form);
      results.appendChild(li);
    });
  }
  function runSearch() {
    fetch(root.dataset.productsUrl + "?q=" + encodeURIComponent(search.value), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); }).then(renderResults).catch(function () { results.textContent = "Search failed; try again."; });
  }
  if (search) { search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(runSearch, 250); }); runSearch(); }

  // --- live panel ------------------------------------------------------------------
  function stats() {
    fetch(root.dataset.statsUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (s) {
      $("panel-peak").textContent = s.peak_viewers; $("panel-chat").textContent = s.chat_per_minute;
      $("panel-likes").textContent = s.likes; $("panel-viewers").textContent = s.viewers == null ? "–" : s.viewers;
    }).catch(function () {});
  }
  stats(); setInterval(stats, 5000);
  connect();
})();
