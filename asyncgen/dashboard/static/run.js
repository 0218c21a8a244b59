// Live run page: poll /api/run and update the numbers and tables in place (text
// nodes only). The page is complete without this script; it just does not move.
(function () {
  "use strict";
  var POLL_MS = 1000;

  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    return td;
  }

  function rows(selector, list) {
    var body = document.querySelector(selector + " tbody");
    if (!body || !list.length) return;
    body.replaceChildren.apply(body, list.map(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (td) { tr.appendChild(td); });
      return tr;
    }));
  }

  function update(b) {
    ["done", "ok", "failed", "retries", "rate", "tokens", "cost"].forEach(function (name) {
      var el = document.querySelector('[data-run="' + name + '"]');
      if (el) el.textContent = String(b[name]);
    });
    var eta = document.querySelector('[data-run="eta"]');
    if (eta) eta.textContent = b.eta === null ? "?" : String(b.eta);
    var state = document.querySelector('[data-run="state"]');
    if (state) state.textContent = b.finished ? "finished" : "running";
    var bar = document.querySelector("[data-run-progress]");
    if (bar) bar.value = b.percent;
    rows("#models", Object.keys(b.models).map(function (name) {
      var m = b.models[name];
      return [cell(name), cell(m.done), cell(m.ok), cell(m.failed), cell(m.retries),
              cell(m.tokens), cell(m.cost), cell(m.mean_latency)];
    }));
    rows("#failures", b.failures.map(function (f) {
      return [cell(f.index + 1), cell(f.model), cell(f.error_type + ": " + f.error, "error"),
              cell(f.attempts)];
    }));
    return b.finished;
  }

  function poll() {
    fetch("/api/run", { headers: { accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (b) { return b ? update(b) : false; })
      .catch(function () { return false; })
      .then(function (finished) { if (!finished) setTimeout(poll, POLL_MS); });
  }
  poll();
})();
