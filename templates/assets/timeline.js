/* reportgen timeline viewer: one town's whole window, virtual scrolling, search over every row.
   Data comes from <script> files (timeline/index.js, timeline/chunk-N.js) that push their JSON
   to window.reportgenTimeline, so the page works from file://; the single-file bundle holds
   them inline. Row encoding: reportgen/report/timeline.py. Plain ES2017, no network. */
(function () {
  "use strict";

  var ROW_H = 28;          /* px: every row has the same height (virtual scrolling) */
  var OVERSCAN = 8;        /* rows drawn above and below the visible ones */
  var TICK = 0, IDLE = 1, HISTORY = 2;
  var SOURCE_NAMES = { bead_event: "bead event", town_event: "town event", dry_run: "dry run" };

  var index = null;        /* the index file's JSON */
  var chunks = [];         /* chunk number (0-based) -> {s, rows} once loaded */
  var pending = {};        /* chunk number -> [callbacks] while loading */
  var starts = [];         /* first global row number of each chunk */
  var hay = [];            /* per chunk: per row, its lowercase search text */
  var view = null;         /* global row numbers shown (null: every row) */
  var selected = -1;
  var el = {};

  /* ── Data files ───────────────────────────────────────────────────── */
  /* A chunk's rows are packed (reportgen/report/timeline.py): a row's time as ms after the
     end of the row before it (the first after the chunk's t0), a quiet run's end as ms after
     its start, a tick's effects (4) as their outcomes alone when the counts are theirs, and
     its violations (5) or metrics (6) as 1 when they are those of the chunk's tick row
     before it. */
  function unpack(part) {
    var end = part.t0, last = {};
    part.rows.forEach(function (r) {
      r[1] += end;
      end = r[1];
      if (r[0] === IDLE) { r[2] += r[1]; end = r[2]; }
      if (r[0] === TICK) {
        if (!r[4].length || Array.isArray(r[4][0])) {
          var ok = r[4].filter(function (o) { return o[1]; }).length;
          r[4] = [r[4].length, ok, r[4].length - ok, r[4]];
        }
        [5, 6].forEach(function (col) { if (r[col] === 1) { r[col] = last[col]; } last[col] = r[col]; });
      }
    });
  }

  function receive(part) {
    if (part.part === "index") { index = part; return; }
    unpack(part);
    chunks[part.n - 1] = part;
    var waiting = pending[part.n - 1] || [];
    delete pending[part.n - 1];
    waiting.forEach(function (done) { done(); });
  }

  function drainQueue() {
    var queue = window.reportgenTimeline;
    if (Array.isArray(queue)) { queue.forEach(receive); }
    window.reportgenTimeline = { push: receive };
  }

  function base() {
    var href = el.root.getAttribute("data-index") || "";
    return href.slice(0, href.lastIndexOf("/") + 1);
  }

  function loadChunk(c, done) {
    if (chunks[c]) { done(); return; }
    if (pending[c]) { pending[c].push(done); return; }
    pending[c] = [done];
    var script = document.createElement("script");
    script.src = base() + index.chunks[c].href;
    script.onerror = function () { el.count.textContent = "could not load " + index.chunks[c].href; };
    document.body.appendChild(script);
  }

  function loadAll(done) {
    var left = index.chunks.length;
    if (!left) { done(); return; }
    index.chunks.forEach(function (_, c) { loadChunk(c, function () { left -= 1; if (!left) { done(); } }); });
  }

  function locateRow(g) {
    var c = 0;
    while (c + 1 < starts.length && starts[c + 1] <= g) { c += 1; }
    return [c, g - starts[c]];
  }

  function rowAt(g) {
    var at = locateRow(g);
    var chunk = chunks[at[0]];
    return chunk ? { row: chunk.rows[at[1]], s: chunk.s, c: at[0] } : null;
  }

  /* ── Text of a row ────────────────────────────────────────────────── */
  function ent(i) { return index.entities[i]; }

  function clock(ms) {
    return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
  }

  function actionFields(a, s) {
    var out = [];
    for (var i = 0; i < a[2].length; i += 2) {
      var v = a[2][i + 1];
      out.push({ key: s[a[2][i]], value: v < 0 ? null : s[v], entity: v < 0 ? -1 - v : -1 });
    }
    return out;
  }

  function rowEntities(r) {
    if (r[0] === IDLE) { return []; }
    if (r[0] === HISTORY) { return r[4]; }
    var found = [];
    r[2].forEach(function (e) { found = found.concat(e[3]); });
    r[3].forEach(function (a) { for (var i = 1; i < a[2].length; i += 2) { if (a[2][i] < 0) { found.push(-1 - a[2][i]); } } });
    r[4][3].forEach(function (o) { found = found.concat(o[3]); });
    r[5].forEach(function (v) { found = found.concat(v[3]); });
    return found;
  }

  /* What a tick's row left out of kind k (0 events, 1 actions, 2 effects, 3 violations):
     [[type (string number; invariant for violations), count], …]. */
  function left(r, k) { return r[0] === TICK && r[7] ? r[7][k] : []; }

  function leftCount(r, k) { return left(r, k).reduce(function (n, x) { return n + x[1]; }, 0); }

  function invariantsOf(r) {
    var found = [];
    r[5].forEach(function (v) { if (found.indexOf(v[0]) < 0) { found.push(v[0]); } });
    left(r, 3).forEach(function (x) { if (found.indexOf(x[0]) < 0) { found.push(x[0]); } });
    return found;
  }

  function countTypes(list, name, extra) {
    var counts = {}, order = [];
    list.forEach(function (x) { var n = name(x); if (!counts[n]) { counts[n] = 0; order.push(n); } counts[n] += 1; });
    (extra || []).forEach(function (x) { if (!counts[x[0]]) { counts[x[0]] = 0; order.push(x[0]); } counts[x[0]] += x[1]; });
    return order.map(function (n) { return counts[n] > 1 ? n + " ×" + counts[n] : n; });
  }

  function summary(r, s) {
    if (r[0] === IDLE) {
      var text = r[3] + " quiet tick" + (r[3] === 1 ? "" : "s") + " until " + clock(r[2]).slice(11);
      return r[4].length ? text + "; violations continuing: invariant " + r[4].join(", ") : text + ", no violation";
    }
    if (r[0] === HISTORY) { return s[r[3]]; }
    var named = function (x) { return [s[x[0]], x[1]]; };
    var parts = countTypes(r[3], function (a) { return s[a[0]]; }, left(r, 1).map(named));
    var names = [];
    rowEntities(r).forEach(function (i) { var l = ent(i)[2]; if (names.indexOf(l) < 0) { names.push(l); } });
    if (r[2].length || left(r, 0).length) { parts.push("events: " + countTypes(r[2], function (e) { return s[e[0]]; }, left(r, 0).map(named)).join(", ")); }
    if (invariantsOf(r).length) { parts.push("⚠ invariant " + invariantsOf(r).join(", ")); }
    if (r[4][2]) { parts.push(r[4][2] + " side effect" + (r[4][2] === 1 ? "" : "s") + " failed"); }
    return parts.join(" · ") + (names.length ? " — " + names.join(", ") : "");
  }

  function sourceOf(r, s) {
    if (r[0] === TICK) { return "tick"; }
    if (r[0] === IDLE) { return "quiet"; }
    return s[r[2]];
  }

  function haystack(r, s) {
    var words = [sourceOf(r, s), summary(r, s)];
    rowEntities(r).forEach(function (i) { words.push(ent(i)[1], ent(i)[2]); });
    if (r[0] === TICK) {
      r[2].forEach(function (e) { words.push("e:" + s[e[0]], s[e[1]], e[2] >= 0 ? s[e[2]] : ""); });
      r[3].forEach(function (a) {
        words.push("a:" + s[a[0]], a[1] >= 0 ? s[a[1]] : "");
        actionFields(a, s).forEach(function (f) { words.push(f.key + "=" + (f.value === null ? ent(f.entity)[1] : f.value)); });
      });
      r[4][3].forEach(function (o) { words.push(s[o[0]], s[o[2]], o[1] ? "" : "fx:failed"); });
      r[5].forEach(function (v) { words.push("v:" + v[0], s[v[1]]); });
      left(r, 0).forEach(function (x) { words.push("e:" + s[x[0]]); });
      left(r, 1).forEach(function (x) { words.push("a:" + s[x[0]]); });
      left(r, 2).forEach(function (x) { words.push(s[x[0]]); });
      left(r, 3).forEach(function (x) { words.push("v:" + x[0]); });
    } else if (r[0] === IDLE) {
      r[4].forEach(function (n) { words.push("v:" + n); });
    } else {
      words.push(s[r[5]]);
    }
    return words.join(" ").toLowerCase();
  }

  /* ── Filters ──────────────────────────────────────────────────────── */
  function filters() {
    return {
      q: el.q.value.trim().toLowerCase(),
      action: el.action.value, event: el.event.value, entity: el.entity.value,
      inv: el.invariant.value, finding: el.finding.value
    };
  }

  function active(f) { return !!(f.q || f.action || f.event || f.entity || f.inv || f.finding); }

  function matches(r, s, text, f) {
    if (f.q && text.indexOf(f.q) < 0) { return false; }
    var typed = function (want) { return function (x) { return s[x[0]] === want; }; };
    if (f.action && !(r[0] === TICK && (r[3].some(typed(f.action)) || left(r, 1).some(typed(f.action))))) { return false; }
    if (f.event && !(r[0] === TICK && (r[2].some(typed(f.event)) || left(r, 0).some(typed(f.event))))
        && !(r[0] === HISTORY && s[r[2]] === f.event)) { return false; }
    if (f.entity && rowEntities(r).indexOf(Number(f.entity)) < 0) { return false; }
    if (f.inv) {
      var n = Number(f.inv);
      var has = r[0] === TICK ? invariantsOf(r).indexOf(n) >= 0 : r[0] === IDLE && r[4].indexOf(n) >= 0;
      if (!has) { return false; }
    }
    if (f.finding) {
      var fd = index.findings[Number(f.finding)];
      var end = r[0] === IDLE ? r[2] : r[1];
      if (end < fd[2] || r[1] > fd[3] || (fd[4] >= 0 && rowEntities(r).indexOf(fd[4]) < 0)) { return false; }
    }
    return true;
  }

  function chunkHay(c) {
    if (!hay[c]) { hay[c] = chunks[c].rows.map(function (r) { return haystack(r, chunks[c].s); }); }
    return hay[c];
  }

  function applyFilters(then) {
    var f = filters();
    saveParams(f);
    if (!active(f)) { view = null; refresh(); if (then) { then(); } return; }
    el.count.textContent = "searching the whole window…";
    loadAll(function () {
      var shown = [];
      chunks.forEach(function (chunk, c) {
        var texts = chunkHay(c);
        chunk.rows.forEach(function (r, i) { if (matches(r, chunk.s, texts[i], f)) { shown.push(starts[c] + i); } });
      });
      view = shown;
      refresh();
      if (then) { then(); }
    });
  }

  function saveParams(f) {
    var params = new URLSearchParams(window.location.search);
    ["q", "action", "event", "entity", "inv", "finding"].forEach(function (k) {
      if (f[k]) { params.set(k, f[k]); } else { params.delete(k); }
    });
    var query = params.toString();
    try {
      window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : "") + window.location.hash);
    } catch (e) { /* file:// in some browsers */ }
  }

  function fillSelect(select, items, label) {
    items.forEach(function (item) {
      var o = document.createElement("option");
      o.value = String(item[0]);
      o.textContent = label(item);
      select.appendChild(o);
    });
  }

  function setupFilters() {
    var fc = index.facets;
    fillSelect(el.action, fc.action, function (x) { return x[0] + " (" + x[1] + ")"; });
    fillSelect(el.event, fc.event.concat(fc.source), function (x) { return (SOURCE_NAMES[x[0]] || x[0]) + " (" + x[1] + ")"; });
    fillSelect(el.entity, fc.entity.slice().sort(function (a, b) { return b[1] - a[1]; }), function (x) {
      return ent(x[0])[0] + " " + ent(x[0])[2] + " (" + x[1] + ")";
    });
    fillSelect(el.invariant, fc.invariant, function (x) { return "invariant " + x[0] + " (" + x[1] + ")"; });
    fillSelect(el.finding, index.findings.map(function (f, i) { return [i, f[1]]; }), function (x) { return x[1]; });
    var params = new URLSearchParams(window.location.search);
    [[el.q, "q"], [el.action, "action"], [el.event, "event"], [el.entity, "entity"], [el.invariant, "inv"], [el.finding, "finding"]].forEach(function (pair) {
      if (params.get(pair[1])) { pair[0].value = params.get(pair[1]); }
      pair[0].addEventListener(pair[0].tagName === "SELECT" ? "change" : "input", function () { applyFilters(); });
    });
  }

  /* ── Virtual list ─────────────────────────────────────────────────── */
  function total() { return view ? view.length : index.rows; }

  function refresh() {
    el.spacer.style.height = (total() * ROW_H) + "px";
    var f = filters();
    el.count.textContent = active(f) ? total() + " of " + index.rows + " rows" : index.rows + " rows";
    el.root.setAttribute("data-shown", String(total()));
    draw();
  }

  function draw() {
    var top = el.viewport.scrollTop, height = el.viewport.clientHeight || 480;
    var first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    var last = Math.min(total() - 1, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    var frag = document.createDocumentFragment(), missing = {};
    for (var p = first; p <= last; p++) {
      var g = view ? view[p] : p;
      var got = rowAt(g);
      if (!got) { missing[locateRow(g)[0]] = true; }
      frag.appendChild(rowElement(p, g, got));
    }
    while (el.spacer.firstChild) { el.spacer.removeChild(el.spacer.firstChild); }
    el.spacer.appendChild(frag);
    var current = selected >= 0 && document.getElementById("tl-row-" + selected);
    if (current) { el.viewport.setAttribute("aria-activedescendant", current.id); }
    else { el.viewport.removeAttribute("aria-activedescendant"); }
    Object.keys(missing).forEach(function (c) { loadChunk(Number(c), draw); });
  }

  function rowElement(p, g, got) {
    var div = document.createElement("div");
    div.className = "tl-row";
    div.style.top = (p * ROW_H) + "px";
    div.setAttribute("role", "option");
    div.setAttribute("data-row", String(g));
    div.id = "tl-row-" + g;
    if (!got) { div.textContent = "loading…"; div.classList.add("muted"); return div; }
    var r = got.row, s = got.s;
    div.setAttribute("data-ms", String(r[1]));
    div.setAttribute("aria-selected", g === selected ? "true" : "false");
    if (g === selected) { div.classList.add("selected"); }
    if ((r[0] === TICK && invariantsOf(r).length) || (r[0] === IDLE && r[4].length)) { div.classList.add("has-v"); }
    if (r[0] === IDLE) { div.classList.add("idle"); }
    var time = document.createElement("span");
    time.className = "mono small tl-time";
    time.textContent = clock(r[1]);
    var badge = document.createElement("span");
    var source = sourceOf(r, s);
    badge.className = "badge tl-src tl-src-" + source;
    badge.textContent = r[0] === HISTORY && source === "dry_run" ? "dry run · at window end" : (SOURCE_NAMES[source] || source);
    var text = document.createElement("span");
    text.className = "tl-text";
    text.textContent = summary(r, s);
    div.appendChild(time);
    div.appendChild(badge);
    div.appendChild(text);
    div.addEventListener("click", function () { select(g, "", true); });
    return div;
  }

  /* ── Selection and detail ─────────────────────────────────────────── */
  /* Select global row g. scroll: "center" (a permalink), "nearest" (a key: just into view) or
     "" (a click: it is in view). mine: the reader chose it here, so the URL names its tick. */
  function select(g, scroll, mine) {
    selected = g;
    var p = position(g);
    var top = el.viewport.scrollTop, height = el.viewport.clientHeight;
    if (scroll === "center" && p >= 0) {
      el.viewport.scrollTop = Math.max(0, p * ROW_H - height / 2 + ROW_H / 2);
    } else if (scroll === "nearest" && p >= 0) {
      if (p * ROW_H < top) { el.viewport.scrollTop = p * ROW_H; }
      else if ((p + 1) * ROW_H > top + height) { el.viewport.scrollTop = (p + 1) * ROW_H - height; }
    }
    draw();
    loadChunk(locateRow(g)[0], function () {
      var got = rowAt(g);
      if (selected !== g || !got) { return; }
      showDetail(got.row, got.s);
      if (mine) { nameInUrl(got.row[1]); }
    });
  }

  /* Where global row g is in the list shown (-1: a filter hides it). */
  function position(g) {
    if (!view) { return g; }
    var lo = 0, hi = view.length - 1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (view[mid] === g) { return mid; }
      if (view[mid] < g) { lo = mid + 1; } else { hi = mid - 1; }
    }
    return -1;
  }

  function nameInUrl(ms) {
    var url = window.location.pathname + window.location.search + "#tick-" + ms;
    try { window.history.replaceState(null, "", url); } catch (e) { /* file:// in some browsers */ }
  }

  /* ── Keyboard: ↓/j and ↑/k the next and previous row shown, Home/End the first and last ── */
  var KEYS = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1, Home: "first", End: "last" };

  /* The row a key moves the selection to, among those shown (-1: none). */
  function target(key) {
    var n = total();
    if (!n) { return -1; }
    var at = function (p) { return view ? view[p] : p; };
    if (KEYS[key] === "first") { return at(0); }
    if (KEYS[key] === "last") { return at(n - 1); }
    if (selected < 0) { return at(KEYS[key] > 0 ? 0 : n - 1); }
    var p = position(selected);
    if (p < 0) {  /* hidden by a filter: the next or previous row shown */
      p = 0;
      while (p < n && view[p] < selected) { p += 1; }
      return at(Math.max(0, Math.min(n - 1, KEYS[key] > 0 ? p : p - 1)));
    }
    return at(Math.max(0, Math.min(n - 1, p + KEYS[key])));
  }

  /* In the list, or with nothing focused once a row is selected (e.g. after a permalink);
     never while typing in the filters, and not from another control, whose keys are its own. */
  function onKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || !(event.key in KEYS)) { return; }
    var focus = document.activeElement;
    var inList = focus === el.viewport;
    if (!inList && !((!focus || focus === document.body) && selected >= 0)) { return; }
    var g = target(event.key);
    event.preventDefault();
    event.stopImmediatePropagation();  /* j and k are the timeline's here, not the next violation */
    if (g < 0) { return; }
    select(g, "nearest", true);
    if (!inList) { el.viewport.scrollIntoView({ block: "nearest" }); }
  }

  function link(i) {
    var e = ent(i), href = e[3];
    var node;
    if (href) {
      node = document.createElement("a");
      node.href = href.charAt(0) === "#" ? href : (document.body.getAttribute("data-root") || "") + href;
    } else {
      node = document.createElement("span");
    }
    node.className = "ent ent-" + e[0];
    node.title = e[0] + " " + e[1];
    node.textContent = e[2];
    return node;
  }

  function item(cls, type, parts) {
    var div = document.createElement("div");
    div.className = "item " + cls;
    var t = document.createElement("span");
    t.className = "t";
    t.textContent = type;
    div.appendChild(t);
    parts.forEach(function (x) {
      div.appendChild(document.createTextNode(" "));
      div.appendChild(typeof x === "number" ? link(x) : document.createTextNode(x));
    });
    return div;
  }

  function heading(text) {
    var h = document.createElement("h3");
    h.textContent = text;
    return h;
  }

  function more(r, s, k, noun, box) {
    var n = leftCount(r, k);
    if (!n) { return; }
    var types = left(r, k).map(function (x) { return (k === 3 ? "invariant " + x[0] : s[x[0]]) + " ×" + x[1]; });
    box.appendChild(item("more muted", "…", ["and " + n + " more " + noun + " not shown (" + types.join(", ") + ")"]));
  }

  function replayHint(r, box) {
    if (!r[7]) { return; }
    var at = new Date(r[1]).toISOString();
    var p = document.createElement("p");
    p.className = "small more";
    p.appendChild(document.createTextNode("This tick held more than its row keeps. The town's source has it in full: "));
    var code = document.createElement("code");
    code.textContent = "reportgen replay --db " + index.replay_db + " --from " + at + " --to " + at + " --ticks --json";
    p.appendChild(code);
    box.appendChild(p);
  }

  function tickDetail(r, s, box) {
    box.appendChild(item("", "metrics", [r[6][0] + " drained · " + r[6][1] + " pending · " + r[6][2] + " ms" + (r[6][3] ? " · draining" : "")]));
    if (r[2].length || r[7]) { box.appendChild(heading("Events drained")); }
    r[2].forEach(function (e) {
      box.appendChild(item("ev" + (e[2] >= 0 ? " bad" : ""), s[e[0]], e[3].concat([s[e[1]]], e[2] >= 0 ? [s[e[2]]] : [])));
    });
    more(r, s, 0, "events", box);
    if (r[3].length || r[7]) { box.appendChild(heading("Actions (full objects)")); }
    r[3].forEach(function (a) {
      var parts = [];
      actionFields(a, s).forEach(function (f) { parts.push(f.key + "="); parts.push(f.value === null ? f.entity : f.value); });
      if (a[1] >= 0) { parts.push("failed: " + s[a[1]]); }
      box.appendChild(item("act" + (a[1] >= 0 ? " bad" : ""), s[a[0]], parts));
    });
    more(r, s, 1, "actions", box);
    if (r[4][0]) { box.appendChild(heading("Side effects: " + r[4][0] + " attempted · " + r[4][1] + " ok · " + r[4][2] + " failed")); }
    r[4][3].forEach(function (o) {
      box.appendChild(item("fx" + (o[1] ? "" : " bad"), s[o[0]], [o[1] ? "ok" : "failed"].concat(o[3], [s[o[2]]])));
    });
    more(r, s, 2, "side effects", box);
    if (r[5].length) { box.appendChild(heading("Violations")); }
    r[5].forEach(function (v) {
      var div = item("vi", "invariant " + v[0], [s[v[1]]].concat(v[3]));
      if (v[2] >= 0) {
        var ep = index.episodes[v[2]], a = document.createElement("a");
        a.href = ep[1].charAt(0) === "#" ? ep[1] : (document.body.getAttribute("data-root") || "") + ep[1];
        a.textContent = "episode " + ep[0];
        div.appendChild(document.createTextNode(" · "));
        div.appendChild(a);
      }
      box.appendChild(div);
    });
    more(r, s, 3, "violations", box);
    replayHint(r, box);
  }

  function showDetail(r, s) {
    var box = el.detail;
    while (box.firstChild) { box.removeChild(box.firstChild); }
    box.setAttribute("data-ms", String(r[1]));
    var title = document.createElement("h3");
    title.textContent = clock(r[1]) + " UTC · " + (SOURCE_NAMES[sourceOf(r, s)] || sourceOf(r, s));
    box.appendChild(title);
    if (r[0] === TICK) {
      tickDetail(r, s, box);
    } else if (r[0] === IDLE) {
      box.appendChild(item("", "quiet", [summary(r, s) + " (until " + clock(r[2]) + "): no event, action or side effect"]));
    } else {
      if (s[r[2]] === "dry_run") {
        box.appendChild(item("bad", "dry run", ["what the next tick would do on the state at the window's end; not something that happened"]));
      }
      box.appendChild(item("", s[r[2]], [s[r[3]]].concat(r[4])));
      var pre = document.createElement("pre");
      pre.textContent = s[r[5]];
      box.appendChild(pre);
    }
  }

  /* ── Permalinks: #tick-<epoch ms> selects the row holding that time ─ */
  function goTo(ms, fromChart) {
    if (!index || !index.chunks.length) { return; }
    var c = 0;
    while (c + 1 < index.chunks.length && index.chunks[c].to < ms) { c += 1; }
    loadChunk(c, function () {
      var rows = chunks[c].rows, i = 0;
      while (i + 1 < rows.length && (rows[i][0] === IDLE ? rows[i][2] : rows[i][1]) < ms) { i += 1; }
      var g = starts[c] + i;
      var land = function () {
        select(g, "center", false);
        el.root.scrollIntoView({ block: fromChart ? "start" : "nearest" });
      };
      if (view && view.indexOf(g) < 0) { clearFilters(land); } else { land(); }
    });
  }

  function clearFilters(then) {
    [el.q, el.action, el.event, el.entity, el.invariant, el.finding].forEach(function (c) { c.value = ""; });
    applyFilters(then);
  }

  function fromHash() {
    var m = window.location.hash.match(/^#tick-(\d+)$/);
    if (m) { goTo(Number(m[1]), false); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    el.root = document.getElementById("timeline");
    drainQueue();
    if (!el.root || !index) { return; }
    ["q", "action", "event", "entity", "invariant", "finding", "count", "viewport", "detail"].forEach(function (k) {
      el[k] = document.getElementById("tl-" + k);
    });
    el.spacer = el.viewport.querySelector(".tl-spacer");
    var n = 0;
    starts = index.chunks.map(function (c) { var s = n; n += c.rows; return s; });
    el.root.hidden = false;
    el.viewport.addEventListener("scroll", function () { window.requestAnimationFrame(draw); });
    setupFilters();
    window.reportgenTimelineGoto = function (ms) { goTo(ms, true); };
    window.reportgenTimelineState = function () {
      var rowMs = function (g) { var got = rowAt(g); return got ? got.row[1] : null; };
      return {
        shown: total(), rows: index.rows, selected: selected, loaded: chunks.filter(Boolean).length,
        view: view ? view.slice() : null, shownMs: view ? view.map(rowMs) : null
      };
    };
    window.addEventListener("hashchange", fromHash);
    window.addEventListener("keydown", onKey, true);
    applyFilters(fromHash);
  });
})();
