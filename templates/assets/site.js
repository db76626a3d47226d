/* reportgen site script: charts, filters and sort kept in the URL, keyboard (the timeline: timeline.js).
   Plain ES2017 in one IIFE (the Vega bundle declares top-level names; ours must not clash).
   Nothing here makes a network request. */
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);

  function setParam(name, value) {
    if (value) { params.set(name, value); } else { params.delete(name); }
    var query = params.toString();
    var url = window.location.pathname + (query ? "?" + query : "") + window.location.hash;
    try { window.history.replaceState(null, "", url); } catch (e) { /* file:// in some browsers */ }
  }

  function readJson(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  /* ── Charts ─────────────────────────────────────────────────────────── */
  function renderCharts() {
    var charts = document.querySelectorAll(".chart[data-spec]");
    if (!charts.length || typeof window.vegaEmbed !== "function") { return; }
    var datasets = readJson("datasets") || {};
    var named = {};
    Object.keys(datasets).forEach(function (k) { if (Array.isArray(datasets[k])) { named[k] = datasets[k]; } });
    var open = chartLinks(datasets, readJson("chart-hrefs") || {});
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    charts.forEach(function (el) {
      var spec = readJson(el.getAttribute("data-spec"));
      if (!spec) { return; }
      spec.datasets = Object.assign({}, spec.datasets || {}, named);
      spec.background = null;
      var options = { actions: false, renderer: "svg", tooltip: { theme: dark ? "dark" : "light" } };
      if (dark) { options.theme = "dark"; }
      window.vegaEmbed(el, spec, options).then(function (result) {
        el.setAttribute("data-rendered", "true");
        /* the card is one image named by its caption (role="img"); Vega's own marks are hidden */
        el.querySelectorAll("svg, canvas").forEach(function (g) { g.setAttribute("aria-hidden", "true"); });
        result.view.addEventListener("click", function (event, item) {
          var target = item && item.datum ? open(item.datum) : null;
          if (target) { window.location.href = target; }
        });
      }).catch(function (err) {
        el.textContent = "Chart could not be drawn: " + err;
      });
    });
  }

  /* Where a click on a chart leads: a band's page, else the permalink of the bucket's tick
     (TownData.tick_href, split into a page and a fragment). Page hrefs were mapped by the
     page's url() (relative to it, or to an anchor of the single-file bundle, "" when it does
     not hold the page); a tick page the bundle maps to nothing is its own tick anchor. */
  function chartLinks(datasets, hrefs) {
    var pages = datasets.tick_pages || [];
    var byBucket = {};
    (datasets.k || []).forEach(function (k) { byBucket[k.t] = k; });
    return function (datum) {
      if (typeof datum.href === "string") { return hrefs[datum.href] || null; }
      var link = typeof datum.t === "number" ? byBucket[datum.t] : null;
      if (!link || !pages[link.p]) { return null; }
      var page = hrefs[pages[link.p].href] || "";
      return (page && page.charAt(0) !== "#" ? page : "") + "#" + link.f;
    };
  }

  /* ── Filters and sort (state in the query string) ───────────────────── */
  function applyFilters(tableId) {
    var table = document.getElementById(tableId);
    if (!table) { return; }
    var text = "", onlyV = false, state = "";
    document.querySelectorAll('[data-filter="' + tableId + '"]').forEach(function (c) {
      if (c.classList.contains("filter")) { text = c.value.trim().toLowerCase(); }
      if (c.classList.contains("only-v")) { onlyV = c.checked; }
      if (c.classList.contains("state-filter")) { state = c.value; }
    });
    var shown = 0, total = 0;
    table.querySelectorAll("tbody tr").forEach(function (row) {
      total += 1;
      var hay = (row.getAttribute("data-tags") || "") + " " + row.textContent.toLowerCase();
      var ok = (!text || hay.toLowerCase().indexOf(text) >= 0)
        && (!onlyV || row.classList.contains("has-v"))
        && (!state || row.getAttribute("data-state") === state);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var count = document.querySelector('.filter-count[data-for="' + tableId + '"]');
    if (count) { count.textContent = (text || onlyV || state) ? shown + " of " + total + " rows" : ""; }
  }

  function setupFilters() {
    document.querySelectorAll("[data-filter]").forEach(function (control) {
      var table = control.getAttribute("data-filter");
      var name = control.getAttribute("data-param");
      var initial = params.get(name);
      if (initial !== null) {
        if (control.type === "checkbox") { control.checked = initial === "1"; } else { control.value = initial; }
      }
      var handler = function () {
        setParam(name, control.type === "checkbox" ? (control.checked ? "1" : "") : control.value);
        applyFilters(table);
      };
      control.addEventListener(control.tagName === "SELECT" || control.type === "checkbox" ? "change" : "input", handler);
      applyFilters(table);
    });
  }

  function cellValue(row, index) {
    var cell = row.children[index];
    if (!cell) { return ""; }
    var v = cell.getAttribute("data-sort");
    return v === null ? cell.textContent.trim() : v;
  }

  function sortTable(table, key, dir) {
    var headers = Array.prototype.slice.call(table.querySelectorAll("th[data-key]"));
    var index = headers.findIndex(function (h) { return h.getAttribute("data-key") === key; });
    if (index < 0) { return; }
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    headers[index].setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index), y = cellValue(b, index);
      var nx = Number(x), ny = Number(y);
      var c = (x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return dir === "desc" ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function setupSort() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("th[data-key] button").forEach(function (button) {
        button.addEventListener("click", function () {
          var th = button.parentElement;
          var dir = th.getAttribute("aria-sort") === "ascending" ? "desc" : "asc";
          sortTable(table, th.getAttribute("data-key"), dir);
          setParam("sort", th.getAttribute("data-key"));
          setParam("dir", dir === "desc" ? "desc" : "");
        });
      });
      if (params.get("sort")) { sortTable(table, params.get("sort"), params.get("dir") || "asc"); }
    });
  }

  /* ── Keyboard ───────────────────────────────────────────────────────── */
  var cursor = -1;

  function moveViolation(step) {
    var link = document.querySelector(step > 0 ? 'link[rel="next"]' : 'link[rel="prev"]');
    var items = Array.prototype.filter.call(document.querySelectorAll(".nav-item"), function (el) {
      return !el.hidden && el.offsetParent !== null;
    });
    if (!items.length) {
      if (link) { window.location.href = link.getAttribute("href"); }
      return;
    }
    cursor = Math.max(0, Math.min(items.length - 1, cursor + step));
    items.forEach(function (el) { el.classList.remove("current"); });
    var el = items[cursor];
    el.classList.add("current");
    el.scrollIntoView({ block: "center" });
    var a = el.querySelector("a");
    if (a) { a.focus({ preventScroll: true }); }
  }

  function toggleHelp() {
    var box = document.getElementById("keys");
    var button = document.querySelector(".help-toggle");
    box.hidden = !box.hidden;
    if (button) { button.setAttribute("aria-expanded", String(!box.hidden)); }
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    switch (event.key) {
      case "j": case "n": moveViolation(1); break;
      case "k": case "p": moveViolation(-1); break;
      case "?": toggleHelp(); break;
      case "/": {
        var f = document.querySelector("input.filter");
        if (f) { event.preventDefault(); f.focus(); }
        break;
      }
      case "u": {
        var crumbs = document.querySelectorAll(".crumbs a");
        if (crumbs.length) { window.location.href = crumbs[crumbs.length - 1].getAttribute("href"); }
        break;
      }
      default: return;
    }
  }

  /* ── Copy buttons ───────────────────────────────────────────────────── */
  function setupCopy() {
    document.querySelectorAll("button.copy").forEach(function (button) {
      button.addEventListener("click", function () {
        var text = button.getAttribute("data-copy");
        var done = function () { button.textContent = "copied"; setTimeout(function () { button.textContent = "copy"; }, 1500); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { selectCode(button); });
        } else { selectCode(button); }
      });
    });
  }

  function selectCode(button) {
    var code = button.parentElement.querySelector("code");
    var range = document.createRange();
    range.selectNodeContents(code);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    button.textContent = "press Ctrl+C";
  }

  /* ── Copy-link buttons: the permalink's absolute URL (with its #hash) ─── */
  function copyLink(button) {
    var url = new URL(button.getAttribute("data-href"), window.location.href).href;
    var copied = function () {
      button.textContent = "copied";
      button.setAttribute("data-copied", url);
      setTimeout(function () { button.textContent = "copy link"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(url).then(copied, function () { showUrl(button, url); });
    } else { showUrl(button, url); }
  }

  function showUrl(button, url) {
    /* no clipboard (file:// in some browsers, or permission refused): the URL, selected */
    var box = button.nextElementSibling;
    if (!box || !box.classList.contains("copy-url")) {
      box = document.createElement("input");
      box.type = "text";
      box.readOnly = true;
      box.className = "copy-url";
      box.setAttribute("aria-label", button.getAttribute("aria-label").replace("Copy", "Press Ctrl+C to copy"));
      button.insertAdjacentElement("afterend", box);
    }
    box.value = url;
    box.focus();
    box.select();
    button.textContent = "press Ctrl+C";
  }

  function setupCopyLinks() {
    document.addEventListener("click", function (event) {
      var button = event.target.closest && event.target.closest("button.copy-link");
      if (button) { copyLink(button); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupFilters();
    setupSort();
    setupCopy();
    setupCopyLinks();
    var help = document.querySelector(".help-toggle");
    if (help) { help.addEventListener("click", toggleHelp); }
    document.addEventListener("keydown", onKey);
    renderCharts();
  });
})();
