/* Behaviour every page shares. No inline handlers anywhere (the Content-Security-Policy
   allows only scripts served from this site): a form with data-confirm="question" asks
   before it submits. */
(function () {
  "use strict";
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      e.preventDefault();
    }
  }, true);
})();
