// Progressive enhancement only: every page works without this script.
// 1. Move focus to an error summary when a page shows one, so a screen reader reads it.
// 2. "Select all" / "Select none" buttons beside each table's columns on the application form.
// 3. The vocabulary search on the application form runs in place (GET vocabulary?fragment=1)
//    instead of posting the form; without the script the form posts and comes back as typed.
(function () {
  "use strict";

  function columnButtons(box) {
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
  }

  // Concepts ticked among the results join the picked list before new results replace them.
  function keepPicked(results) {
    var picked = document.getElementById("picked");
    results.querySelectorAll("input[name=cohort]:checked").forEach(function (box) {
      if (picked.tagName !== "UL") {
        var list = document.createElement("ul");
        list.className = "concepts";
        list.id = "picked";
        picked.replaceWith(list);
        picked = list;
      }
      var label = box.closest("label");
      if (label && box.nextSibling) { box.nextSibling.nodeValue = " Keep "; }
      picked.appendChild(box.closest("li"));
    });
  }

  function searchInPlace(input, button) {
    function run(event) {
      event.preventDefault();
      var url = new URL(input.getAttribute("data-vocabulary"), window.location.href);
      url.searchParams.set("q", input.value);
      url.searchParams.set("fragment", "1");
      document.querySelectorAll("#picked input[name=cohort]:checked").forEach(function (c) {
        url.searchParams.append("picked", c.value);
      });
      fetch(url, { credentials: "same-origin" }).then(function (answer) {
        if (!answer.ok) { throw new Error(String(answer.status)); }
        return answer.text();
      }).then(function (text) {
        var old = document.getElementById("vocabulary-results");
        keepPicked(old);
        var holder = document.createElement("div");
        holder.innerHTML = text;
        old.replaceWith(holder.firstElementChild || holder);
      }).catch(function () {
        input.form.requestSubmit(button);  // fall back to the form's own search
      });
    }
    button.addEventListener("click", run);
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { run(event); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.getElementById("error-summary") || document.getElementById("error");
    if (summary) { summary.focus(); }
    document.querySelectorAll("[data-columns-of]").forEach(columnButtons);
    var q = document.querySelector("input[data-vocabulary]");
    var button = document.getElementById("search-button");
    if (q && button && window.fetch) { searchInPlace(q, button); }
  });
})();
