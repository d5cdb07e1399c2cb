/* Copy buttons ([data-copy] names the field): the share page's link and embed code, a new API key. */
(function () {
  "use strict";
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.querySelector(button.dataset.copy);
      if (!field) return;
      var label = button.textContent;
      function done(ok) {
        button.textContent = ok ? "Copied ✓" : "Press Ctrl+C";
        setTimeout(function () { button.textContent = label; }, 1800);
      }
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { done(false); });
      } else {
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        done(ok);
      }
    });
  });
})();
