// Product page gallery: a thumbnail shows its picture in the main frame.
(function () {
  var main = document.getElementById("product-main-img");
  if (!main) return;
  document.querySelectorAll(".product-thumb").forEach(function (button) {
    button.addEventListener("click", function () {
      main.src = button.dataset.src;
      document.querySelectorAll(".product-thumb").forEach(function (b) { b.removeAttribute("aria-current"); });
      button.setAttribute("aria-current", "true");
    });
  });
})();
