"use strict";
// Shared by review.html and report.html (inlined before the page's own script): building DOM nodes with
// text only, the search box's debounced filter, and the pagers.

function el(tag, cls, text) {
  var node = document.createElement(tag);
  if (cls) { node.className = cls; }
  if (text !== undefined && text !== null) { node.textContent = String(text); }
  return node;
}

function add(parent, child) { parent.appendChild(child); return child; }

// Calls refilter() 150 ms after the last keystroke in #filter-search when the query changed.
function bindSearch(state, refilter) {
  var search = document.getElementById("filter-search");
  var timer = null;
  function onSearch() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var query = search.value.trim().toLowerCase();
      if (query !== state.query) {
        state.query = query;
        refilter();
      }
    }, 150);
  }
  search.addEventListener("input", onSearch);
  search.addEventListener("change", onSearch);
  state.query = search.value.trim().toLowerCase();
  document.getElementById("filters").addEventListener("submit", function (e) { e.preventDefault(); });
}

// Fills every .pager with previous / "page N of M" / next; go(page) shows that page (0-based).
function fillPagers(page, pages, go) {
  Array.prototype.forEach.call(document.querySelectorAll(".pager"), function (nav) {
    nav.textContent = "";
    var prev = add(nav, el("button", "prev", "\u2190 previous"));
    prev.type = "button";
    prev.disabled = page === 0;
    prev.addEventListener("click", function () { go(page - 1); });
    add(nav, el("span", "page", "page " + (page + 1) + " of " + pages));
    var next = add(nav, el("button", "next", "next \u2192"));
    next.type = "button";
    next.disabled = page >= pages - 1;
    next.addEventListener("click", function () { go(page + 1); });
  });
}
