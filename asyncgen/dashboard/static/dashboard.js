// Live overview: poll /api/overview, update the counts in place, chart jobs finished
// per second (measured between polls). The page works without this script.
(function () {
  "use strict";
  var POLL_MS = 2000, KEEP = 150;
  var series = [[], [], []];  // time, completed/s, dead/s
  var last = null, plot = null;
  var chart = document.getElementById("chart");

  function makePlot() {
    if (!window.uPlot || !chart) return null;
    return new uPlot({
      width: Math.max(320, chart.clientWidth - 2), height: 220,
      series: [{}, { label: "completed/s", stroke: "#15803d", width: 2 },
               { label: "dead/s", stroke: "#b91c1c", width: 2 }],
      axes: [{}, { label: "jobs/s" }],
    }, series, chart);
  }

  function update(data) {
    Object.keys(data.counts).forEach(function (state) { set(state, data.counts[state]); });
    set("failed", data.failed); set("retried", data.retried); set("workers", data.workers);
    kinds(data.kinds);
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

  function set(name, value) {
    var el = document.querySelector('[data-count="' + name + '"]');
    if (el && el.textContent !== String(value)) el.textContent = String(value);
  }

  function poll() {
    fetch("/api/overview", { headers: { accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) update(data); })
      .catch(function () { /* the next poll tries again */ })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
