(function () {
  // Renders the groups of review.html from the JSON in #data, a page of groups at a time. Every value from
  // the plan is set with textContent (never as HTML): a name that looks like markup shows as text.
  var data = JSON.parse(document.getElementById("data").textContent);
  var details = JSON.parse(document.getElementById("details").textContent);  // per merge: its values, or null
  var PAGE = 20;
  var VERDICT = data.verdict_text;
  var WHEN = data.severity_text;
  var state = {verdict: "", field: "", size: "", query: "", all: false, page: 0};
  var visible = null;   // [[group index, [merge index, ...]], ...] for the current filters
  var haystack = null;  // per merge: the lower-case text the search looks in (built on the first search)

  function searchText() {
    if (!haystack) {
      haystack = data.merges.map(function (m, i) {
        var g = data.groups[m.g];
        return [m.sn, g.tn, m.s, g.t, g.id].concat(m.e || emails(details[i])).join("\n").toLowerCase();
      });
    }
    return haystack;
  }

  function emails(d) {
    var found = [];
    if (!d) { return found; }
    d.c.forEach(function (ci, p) {
      if (data.columns[ci].indexOf("email") >= 0) { found.push(d.s[p] || "", d.t[p] || ""); }
    });
    return found;
  }

  function sizeMatches(n) {
    return !state.size || String(n) === state.size;
  }

  function mergeMatches(m, i) {
    if (state.verdict === "findings" ? m.v === "ok" : state.verdict && m.v !== state.verdict) { return false; }
    if (state.field !== "" && m.c.indexOf(Number(state.field)) < 0) { return false; }
    if (state.query && searchText()[i].indexOf(state.query) < 0) { return false; }
    return true;
  }

  function filter() {
    var out = [];
    data.groups.forEach(function (g, gi) {
      if (!sizeMatches(g.n)) { return; }
      var shown = g.m.filter(function (mi) { return mergeMatches(data.merges[mi], mi); });
      if (shown.length) { out.push([gi, shown]); }
    });
    return out;
  }

  function valueCell(value, cls) {
    var td = el("td", cls);
    if (value === null || value === undefined) {
      td.className = (cls ? cls + " " : "") + "empty";
    } else {
      td.textContent = value;
    }
    return td;
  }

  function valuesTable(d) {
    if (!d) {
      return el("p", "warning", "This page holds the values of the first " + data.limit +
                " merges only: open the audit CSV for this one's.");
    }
    var table = el("table", "values");
    var head = add(add(table, el("thead")), el("tr"));
    ["Column", "Subordinate", "Target now", "Merge writes", "Target after merge"].forEach(function (t) {
      add(head, el("th", null, t));
    });
    var body = add(table, el("tbody"));
    var rows = 0;
    d.c.forEach(function (ci, p) {
      var writes = Object.prototype.hasOwnProperty.call(d.w, p);
      var changes = Object.prototype.hasOwnProperty.call(d.a, p);
      var differs = d.s[p] !== d.t[p];
      if (!state.all && !writes && !changes && !differs && data.first.indexOf(ci) < 0) { return; }
      var tr = add(body, el("tr", writes || changes ? "changes" : differs ? "differs" : null));
      tr.setAttribute("data-column", data.columns[ci]);
      add(tr, el("th", null, data.columns[ci]));
      add(tr, valueCell(d.s[p]));
      add(tr, valueCell(d.t[p]));
      if (writes) {
        add(tr, d.w[p] === null ? el("td", "writes", "(cleared)") : valueCell(d.w[p], "writes"));
      } else {
        add(tr, valueCell(null));
      }
      add(tr, valueCell(changes ? d.a[p] : d.t[p], changes ? "after" : null));
      rows += 1;
    });
    if (!rows) {
      var td = add(add(body, el("tr")), el("td", "empty", state.all ? "No values." :
                   "The records agree on every column and the merge writes nothing (show all columns to see them)."));
      td.colSpan = 5;
    }
    return table;
  }

  function mergeBlock(m, mi) {
    var g = data.groups[m.g];
    var box = el("article", "merge v-" + m.v);
    box.setAttribute("data-subordinate", m.s);
    box.setAttribute("data-verdict", m.v);
    var title = add(box, el("h4", null, "Merge " + m.o + ": " + (m.sn || "(no name)") + " into " +
                            (g.tn || "(no name)")));
    add(title, el("span", "badge " + m.v, VERDICT[m.v]));
    var meta = add(box, el("p", "meta"));
    add(meta, el("span", "id", "subordinate " + m.s + " \u2192 target " + g.t));
    var link = add(meta, el("a", null, "audit CSV"));
    link.href = "audit_records/" + encodeURIComponent(m.s) + ".csv";
    if (m.c.length) {
      add(box, el("p", "meta", "Changes: " + m.c.map(function (f) { return data.fields[f]; }).join(", ")));
    }
    if (m.f) {
      var list = add(box, el("ul", "findings"));
      m.f.forEach(function (f) {
        add(list, el("li", f[1], (WHEN[f[1]] || f[1]) + " \u2013 " + data.texts[f[0]] + ": " + data.texts[f[2]]));
      });
    }
    var related = m.r ? Object.keys(m.r) : [];
    if (related.length) {
      add(box, el("p", "meta related", "Related rows that move to the target: " + related.map(function (t) {
        return t + " " + m.r[t];
      }).join(", ")));
    }
    add(box, valuesTable(details[mi]));
    return box;
  }

  function groupSection(gi, shown) {
    var g = data.groups[gi];
    var box = el("section", "group");
    box.setAttribute("data-group", g.id);
    add(box, el("h3", null, "Group of " + g.n + " records: target " + (g.tn || "(no name)")));
    add(box, el("p", "meta id", "group " + g.id + ", target " + g.t));
    if (shown.length < g.m.length) {
      add(box, el("p", "meta", "Showing " + shown.length + " of its " + g.m.length +
                  " merges (the filters hide the others)."));
    }
    shown.forEach(function (mi) { add(box, mergeBlock(data.merges[mi], mi)); });
    return box;
  }

  function pagers(pages) { fillPagers(state.page, pages, go); }

  function go(page) {
    state.page = page;
    render();
    document.getElementById("groups-section").scrollIntoView();
  }

  function render() {
    if (!visible) { visible = filter(); }
    var pages = Math.max(1, Math.ceil(visible.length / PAGE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    var box = document.getElementById("groups");
    var part = document.createDocumentFragment();
    var first = state.page * PAGE;
    visible.slice(first, first + PAGE).forEach(function (v) { part.appendChild(groupSection(v[0], v[1])); });
    box.textContent = "";
    box.appendChild(part);
    var merges = visible.reduce(function (n, v) { return n + v[1].length; }, 0);
    document.getElementById("status").textContent = visible.length ?
      merges + " of " + data.merges.length + " merges in " + visible.length + " groups match; groups " +
      (first + 1) + "\u2013" + Math.min(first + PAGE, visible.length) + " shown." :
      "No merge matches the filters.";
    pagers(pages);
    document.body.setAttribute("data-rendered", String(Number(document.body.getAttribute("data-rendered") || 0) + 1));
  }

  function refilter() {
    visible = null;
    state.page = 0;
    render();
  }

  function fieldOptions() {
    var counts = data.fields.map(function () { return 0; });
    data.merges.forEach(function (m) { m.c.forEach(function (f) { counts[f] += 1; }); });
    var select = document.getElementById("filter-field");
    data.fields.map(function (name, i) { return i; }).sort(function (a, b) {
      return counts[b] - counts[a] || (data.fields[a] < data.fields[b] ? -1 : 1);
    }).forEach(function (i) {
      var option = add(select, el("option", null, data.fields[i] + " (" + counts[i] + ")"));
      option.value = String(i);
    });
  }

  function bind(id, key, event) {
    var node = document.getElementById(id);
    node.addEventListener(event, function () {
      state[key] = node.value;
      refilter();
    });
    state[key] = node.value;
  }

  fieldOptions();
  bind("filter-verdict", "verdict", "change");
  bind("filter-field", "field", "change");
  bind("filter-size", "size", "change");
  bindSearch(state, refilter);
  var all = document.getElementById("show-all");
  all.addEventListener("change", function () { state.all = all.checked; render(); });
  state.all = all.checked;
  render();
  document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
}());
