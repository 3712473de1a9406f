"use strict";
// Shared by review.html and report.html (inlined before the page's own script): building DOM nodes with
// text only, and the search box's debounced filter.

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
