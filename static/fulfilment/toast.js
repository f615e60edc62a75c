/* A toast in the live room when one of the viewer's own orders moves (shipped, delivered).
   The server sends `order.update` only to the buyer's sockets; buy.js re-dispatches each
   room frame as an `orders:frame` DOM event. Text is set with textContent. */
(function () {
  "use strict";
  document.addEventListener("orders:frame", function (e) {
    var ev = e.detail;
    if (!ev || ev.type !== "order.update") return;
    var old = document.querySelector(".toast-order");
    if (old) old.remove();
    var box = document.createElement("div");
    box.className = "toast-order";
    box.setAttribute("role", "status");
    box.style.cssText = "position:fixed;left:50%;bottom:24px;transform:translateX(-50%);z-index:60;background:#111827;" +
      "color:#fff;padding:12px 16px;border-radius:12px;box-shadow:0 10px 40px rgba(17,24,39,.3);max-width:min(92vw,440px);" +
      "display:flex;gap:10px;align-items:center;font-size:.93rem";
    var text = document.createElement("span");
    text.textContent = ev.text;
    var link = document.createElement("a");
    link.href = ev.url;
    link.textContent = "Track";
    link.style.cssText = "color:#fecdd3;font-weight:700;white-space:nowrap";
    box.appendChild(text);
    box.appendChild(link);
    document.body.appendChild(box);
    setTimeout(function () { box.remove(); }, 8000);
  });
})();
