(function () {
  // Renders report.html's table of outcomes from the JSON in #data, a page of rows at a time. Every value is
  // set with textContent (never as HTML).
  var data = JSON.parse(document.getElementById("data").textContent);
  var PAGE = 100;
  var VERIFIED = {verified: "verified", mismatch: "mismatch", not_verified: "could not be read back", "": ""};
  var state = {status: "", cls: "", verified: "", query: "", page: 0};
  var visible = null;

  function matches(r) {
    if (state.status && r.st !== state.status) { return false; }
    if (state.cls && r.fc !== state.cls) { return false; }
    if (state.verified && r.vf !== state.verified) { return false; }
    if (state.query && [r.sn, r.tn, r.s, r.t, r.g].join("\n").toLowerCase().indexOf(state.query) < 0) {
      return false;
    }
    return true;
  }

  function record(td, name, id) {
    add(td, el("div", null, name || "(no name)"));
    add(td, el("div", "id", id));
  }

  function details(r) {
    var td = el("td");
    if (r.st === "failed") {
      add(td, el("div", null, r.fc + ": " + r.m));
      add(td, el("div", "hint", data.hints[r.fc] || ""));
    } else if (r.st === "skipped") {
      add(td, el("div", null, r.m || r.why));
    } else if (r.m) {
      add(td, el("div", null, r.m));
    }
    r.mm.forEach(function (m) {
      add(td, el("div", "hint", m[0] + ": wrote " + JSON.stringify(m[1]) + ", read back " + JSON.stringify(m[2])));
    });
    if (r.a > 1) { add(td, el("div", "hint", r.a + " attempts")); }
    return td;
  }

  function row(r) {
    var tr = el("tr", "outcome " + r.st);
    tr.setAttribute("data-subordinate", r.s);
    tr.setAttribute("data-status", r.st);
    add(add(tr, el("td")), el("span", "badge " + r.st, data.statuses[r.st] || r.st));
    record(add(tr, el("td")), r.sn, r.s);
    record(add(tr, el("td")), r.tn, r.t);
    tr.appendChild(details(r));
    add(tr, el("td", null, VERIFIED[r.vf] || ""));
    return tr;
  }

  function pagers(pages) {
    fillPagers(state.page, pages, function (page) { state.page = page; render(); });
  }

  function render() {
    if (!visible) { visible = data.merges.filter(matches); }
    var pages = Math.max(1, Math.ceil(visible.length / PAGE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    var first = state.page * PAGE;
    var body = document.getElementById("rows");
    var part = document.createDocumentFragment();
    visible.slice(first, first + PAGE).forEach(function (r) { part.appendChild(row(r)); });
    body.textContent = "";
    body.appendChild(part);
    document.getElementById("status").textContent = visible.length ?
      visible.length + " of " + data.merges.length + " merges match; " + (first + 1) + "\u2013" +
      Math.min(first + PAGE, visible.length) + " shown." : "No merge matches the filters.";
    pagers(pages);
    document.body.setAttribute("data-rendered", String(Number(document.body.getAttribute("data-rendered") || 0) + 1));
  }

  function refilter() {
    visible = null;
    state.page = 0;
    render();
  }

  function bind(id, key) {
    var node = document.getElementById(id);
    node.addEventListener("change", function () { state[key] = node.value; refilter(); });
    state[key] = node.value;
  }

  bind("filter-status", "status");
  bind("filter-class", "cls");
  bind("filter-verified", "verified");
  bindSearch(state, refilter);
  render();
  document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
}());
