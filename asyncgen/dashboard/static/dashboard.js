// Live overview: poll /api/overview, update the counts in place, chart jobs finished
// per second (measured between polls). The page works without this script.
(function () {
  "use strict";
  var POLL_MS = 2000, KEEP = 150;
  var series = [[], [], []];  // time, completed/s, dead/s
  var last = null, plot = null;
  var chart = document.getElementById("chart");
  var latencyBox = document.getElementById("latency");
  var latencyKeys = [], latencyData = [[]], latencyPlot = null;

  // One sample has no width: give the time axis a minute around it, not years.
  function spread(u, min, max) {
    return min === max ? [min - 30, max + 30] : [min, max];
  }

  function makePlot() {
    if (!window.uPlot || !chart) return null;
    return new uPlot({
      width: Math.max(320, chart.clientWidth - 2), height: 220,
      series: [{}, { label: "completed/s", stroke: "#15803d", width: 2 },
               { label: "dead/s", stroke: "#b91c1c", width: 2 }],
      scales: { x: { time: true, range: spread } },
      axes: [{}, { label: "jobs/s" }],
    }, series, chart);
  }

  function update(data) {
    Object.keys(data.counts).forEach(function (state) { set(state, data.counts[state]); });
    set("failed", data.failed); set("retried", data.retried); set("workers", data.workers);
    kinds(data.kinds);
    client(data.client);
    modelsTable(data.models);
    workersTable(data.reports, data.at);
    groupsTable(data.groups || []);
    if (last) latency(data, last);
    if (last) {
      var dt = Math.max(0.001, data.at - last.at);
      series[0].push(data.at);
      series[1].push(Math.max(0, (data.counts.completed - last.counts.completed) / dt));
      series[2].push(Math.max(0, (data.counts.dead - last.counts.dead) / dt));
      if (series[0].length > KEEP) series.forEach(function (s) { s.shift(); });
      if (!plot) plot = makePlot();
      if (plot) plot.setData(series);
      var rates = document.getElementById("rates");
      if (rates) rates.textContent = "Now: " + series[1][series[1].length - 1].toFixed(1) +
        " completed/s, " + series[2][series[2].length - 1].toFixed(1) + " dead/s.";
    }
    last = data;
  }

  // The by-kind table, rebuilt with text nodes only (never HTML from the server's data).
  function kinds(byKind) {
    var body = document.querySelector("#kinds tbody");
    if (!body) return;
    var states = Array.prototype.map.call(document.querySelectorAll("#kinds thead th"),
      function (th) { return th.textContent; }).slice(1);
    var rows = Object.keys(byKind).sort().map(function (kind) {
      var tr = document.createElement("tr"), td = document.createElement("td");
      var a = document.createElement("a");
      a.href = "/jobs?kind=" + encodeURIComponent(kind); a.textContent = kind;
      td.appendChild(a); tr.appendChild(td);
      states.forEach(function (state) {
        var cell = document.createElement("td");
        cell.textContent = byKind[kind][state] === undefined ? "" : String(byKind[kind][state]);
        tr.appendChild(cell);
      });
      return tr;
    });
    if (rows.length) body.replaceChildren.apply(body, rows);
  }

  function client(c) {
    text('[data-client="requests"]', c.requests);
    text('[data-client="tokens"]', c.tokens);
    text('[data-client="cost"]', money(c.cost));
    text('[data-client="share_429"]', c.share_429 === null ? "-" : (100 * c.share_429).toFixed(1) + "%");
  }

  // Dollars to a width a card holds: cents for large sums, 4 significant digits below $1.
  function money(value) {
    if (value >= 1) return value.toFixed(2);
    return value === 0 ? "0" : Number(value.toPrecision(4)).toString();
  }

  function text(selector, value) {
    var el = document.querySelector(selector);
    if (el) el.textContent = String(value);
  }

  function td(value) {
    var cell = document.createElement("td");
    cell.textContent = value === null || value === undefined ? "" : String(value);
    return cell;
  }

  function modelsTable(models) {
    var body = document.querySelector("#models tbody");
    var keys = Object.keys(models);
    if (!body || !keys.length) return;
    body.replaceChildren.apply(body, keys.map(function (key) {
      var m = models[key], tr = document.createElement("tr");
      [m.kind, m.model, m.ok, m.failed, m.retried,
       m.error_rate === null ? "" : (100 * m.error_rate).toFixed(1) + "%",
       m.mean_seconds].forEach(function (v) { tr.appendChild(td(v)); });
      return tr;
    }));
  }

  function ago(epoch, now) {
    if (epoch === null || epoch === undefined) return "";
    var s = Math.max(0, now - epoch);
    return s < 60 ? s.toFixed(0) + " s ago" : s < 3600 ? (s / 60).toFixed(0) + " min ago"
      : (s / 3600).toFixed(1) + " h ago";
  }

  function workersTable(reports, now) {
    var body = document.querySelector("#workers tbody");
    if (!body || !reports.length) return;
    body.replaceChildren.apply(body, reports.map(function (w) {
      var tr = document.createElement("tr");
      [w.name, w.state, ago(w.started_at, now), w.concurrency, w.running_count,
       w.kinds.join(", "), w.credit_paused ? "paused" : "", w.open_circuits.join(", "),
       w.seen + " s ago"].forEach(function (v) { tr.appendChild(td(v)); });
      return tr;
    }));
  }

  function groupsTable(groups) {
    var body = document.querySelector("#groups tbody");
    if (!body || !groups.length) return;
    body.replaceChildren.apply(body, groups.map(function (g) {
      var tr = document.createElement("tr"), first = document.createElement("td");
      var link = document.createElement("a");
      link.href = "/jobs/" + encodeURIComponent(g.id);
      link.textContent = g.id.slice(0, 12);
      first.appendChild(link);
      tr.appendChild(first);
      [g.on_complete, g.state, g.size, g.pending, g.running, g.completed, g.dead,
       g.cancelled].forEach(function (v) { tr.appendChild(td(v)); });
      var cell = document.createElement("td"), bar = document.createElement("progress");
      bar.max = 1;
      bar.value = g.progress;
      cell.appendChild(bar);
      cell.appendChild(document.createTextNode(" " + (100 * g.progress).toFixed(0) + "%"));
      tr.appendChild(cell);
      tr.appendChild(td(g.eta === null ? "" : g.eta.toFixed(0)));
      return tr;
    }));
  }

  // Mean run time per (kind, model) between two polls: seconds added / runs added.
  function latency(data, before) {
    if (!window.uPlot || !latencyBox) return;
    var keys = Object.keys(data.models).sort();
    if (keys.join("|") !== latencyKeys.join("|")) {  // a new model: start the chart again
      latencyKeys = keys;
      latencyData = [[]].concat(keys.map(function () { return []; }));
      if (latencyPlot) { latencyPlot.destroy(); latencyPlot = null; }
    }
    if (!keys.length) return;
    latencyData[0].push(data.at);
    keys.forEach(function (key, i) {
      var now = data.models[key], then = before.models[key];
      var runs = now.ok + now.failed - (then ? then.ok + then.failed : 0);
      var seconds = now.seconds - (then ? then.seconds : 0);
      latencyData[i + 1].push(runs > 0 ? seconds / runs : null);
    });
    if (latencyData[0].length > KEEP) latencyData.forEach(function (s) { s.shift(); });
    if (!latencyPlot) {
      var palette = ["#2563eb", "#15803d", "#b45309", "#7c3aed", "#db2777", "#0891b2"];
      latencyPlot = new uPlot({
        width: Math.max(320, latencyBox.clientWidth - 2), height: 220, spanGaps: true,
        series: [{}].concat(keys.map(function (key, i) {
          return { label: key, stroke: palette[i % palette.length], width: 2 };
        })),
        scales: { x: { time: true, range: spread } },
        axes: [{}, { label: "seconds" }],
      }, latencyData, latencyBox);
    } else {
      latencyPlot.setData(latencyData);
    }
  }

  function set(name, value) {
    var el = document.querySelector('[data-count="' + name + '"]');
    if (el && el.textContent !== String(value)) el.textContent = String(value);
  }

  // While the queue cannot be read the page says so (and keeps the last figures);
  // the next poll tries again.
  function reachable(yes) {
    var banner = document.getElementById("unreachable");
    if (banner) banner.hidden = yes;
  }

  function poll() {
    fetch("/api/overview", { headers: { accept: "application/json" } })
      .then(function (r) { reachable(r.ok); return r.ok ? r.json() : null; })
      .then(function (data) { if (data) update(data); })
      .catch(function () { reachable(false); })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
