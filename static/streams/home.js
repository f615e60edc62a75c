/* Upcoming rooms: a live countdown on each tile ("in 2h 05m", "in 4m 10s", "starting"). */
(function () {
  "use strict";
  var els = document.querySelectorAll("[data-countdown]");
  if (!els.length) return;
  function label(ms) {
    if (ms <= 0) return "Starting now";
    var s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d > 0) return "in " + d + "d " + h + "h";
    if (h > 0) return "in " + h + "h " + String(m).padStart(2, "0") + "m";
    return "in " + m + "m " + String(sec).padStart(2, "0") + "s";
  }
  function tick() {
    var now = Date.now();
    els.forEach(function (el) {
      var at = Date.parse(el.dataset.countdown || el.getAttribute("datetime"));
      if (!isNaN(at)) { el.textContent = "Starts " + label(at - now); el.title = new Date(at).toLocaleString(); }
    });
  }
  tick(); setInterval(tick, 1000);
})();
