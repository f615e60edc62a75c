/* My orders: statuses update live (polls the small status endpoint; stops once final). */
(function () {
  "use strict";
  var FINAL = { payment_failed: 1, expired: 1, cancelled: 1, refunded: 1, delivered: 1 };
  function poll(url, apply, everyMs) {
    var timer = setInterval(function () {
      if (document.hidden) return;
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (st) {
        if (!st) return;
        apply(st);
        if (st.final || FINAL[st.order.status]) clearInterval(timer);
      }).catch(function () {});
    }, everyMs);
  }
  var panel = document.getElementById("order-panel");
  if (panel && panel.dataset.final !== "true") {
    var seen = panel.dataset.status;
    poll(panel.dataset.statusUrl, function (st) {
      if (st.order.status !== seen) location.reload();   // a new step: re-render the timeline from the server
    }, 2000);
  }
  document.querySelectorAll(".order-row[data-status-url]").forEach(function (row) {
    var badge = row.querySelector(".status-badge");
    if (!badge || FINAL[badge.dataset.status]) return;
    poll(row.dataset.statusUrl, function (st) {
      badge.dataset.status = st.order.status;
      badge.textContent = st.order.status_label;
    }, 3000);
  });
})();
