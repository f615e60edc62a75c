/* The host's live sales figures (polled every 2 s; the host's own data only) and the
   flash-sale launcher. Fills the Live panel's #panel-sales tile too. */
(function () {
  "use strict";
  var box = document.getElementById("orders-sales");
  if (!box) return;
  var csrf = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";
  function set(id, text) { var el = document.getElementById(id); if (el) el.textContent = text; }
  function refresh() {
    if (document.hidden) return;
    fetch(box.dataset.salesUrl, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (s) {
      if (!s) return;
      set("sales-orders", s.orders); set("sales-units", s.units); set("sales-gmv", "¥" + s.gmv); set("sales-commission", "¥" + s.commission);
      var tile = document.querySelector("#panel-sales .value");
      if (tile) tile.textContent = "¥" + Math.round(Number(s.gmv)).toLocaleString("en-US");
      var label = document.querySelector("#panel-sales .label");
      if (label) label.textContent = "Sales · " + s.orders + " order" + (s.orders === 1 ? "" : "s");
      var body = document.getElementById("sales-products");
      var rows = s.products.filter(function (p) { return p.opened || p.buyers; });
      if (!rows.length) return;
      body.textContent = "";
      rows.forEach(function (p) {
        var tr = document.createElement("tr");
        [p.title, p.opened, p.buyers, p.units, p.conversion + "%"].forEach(function (v, i) {
          var td = document.createElement("td"); td.textContent = v; if (i) td.className = "num"; tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    }).catch(function () {});
  }
  refresh();
  setInterval(refresh, 2000);

  var form = document.getElementById("flash-form");
  if (form) form.addEventListener("submit", function (e) {
    e.preventDefault();
    var d = new FormData(form), note = document.getElementById("flash-note");
    var body = { item: Number(d.get("item")), sale_price: d.get("sale_price"), quantity: Number(d.get("quantity")),
                 per_user_limit: Number(d.get("per_user_limit")), duration_seconds: Math.round(Number(d.get("duration")) * 60),
                 starts_at: new Date(Date.now() + 1000 * Number(d.get("starts_in") || 0)).toISOString() };
    note.textContent = "Starting…";
    fetch(box.dataset.flashUrl, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json", "X-CSRFToken": csrf }, body: JSON.stringify(body) })
      .then(function (r) { return r.json(); })
      .then(function (r) { note.textContent = r.ok ? "Flash sale on: " + r.sale.quantity + " units at ¥" + r.sale.sale_price + ". Viewers see the countdown now." : r.message; })
      .catch(function () { note.textContent = "That didn't work; check your connection."; });
  });
})();
