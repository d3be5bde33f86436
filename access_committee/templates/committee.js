// Progressive enhancement only: every page works without this script.
// 1. Move focus to an error summary when a page shows one, so a screen reader reads it.
// 2. "Select all" / "none" buttons beside each table's columns on the application form.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.getElementById("error-summary") || document.getElementById("error");
    if (summary) { summary.focus(); }
    document.querySelectorAll("[data-columns-of]").forEach(function (box) {
      var bar = document.createElement("p");
      [["Select all", true], ["Select none", false]].forEach(function (pair) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "button secondary small";
        b.textContent = pair[0];
        b.addEventListener("click", function () {
          box.querySelectorAll("input[type=checkbox]:not([disabled])").forEach(function (c) {
            c.checked = pair[1];
          });
        });
        bar.appendChild(b);
      });
      box.insertBefore(bar, box.firstChild);
    });
  });
})();
