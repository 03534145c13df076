// threadstance dashboard: draws the trend charts (plotly, served locally) after a page load or an htmx swap.
(function () {
  "use strict";
  var COLOURS = {negative: "#d62728", neutral: "#7f7f7f", positive: "#2ca02c", favor: "#2ca02c", against: "#d62728", abstain: "#9467bd"};
  function mid(r) { var a = Date.parse(r.period_start), b = Date.parse(r.period_end); return new Date(a + (b - a) / 2).toISOString().slice(0, 10); }
  function draw(root) {
    var data = root.querySelector ? root.querySelector("#trend-data") : null;
    if (!data || typeof Plotly === "undefined") { return; }
    var byTarget = JSON.parse(data.textContent);
    root.querySelectorAll(".trend-chart").forEach(function (el) {
      var target = el.getAttribute("data-target"), rows = byTarget[target] || [], traces = [], shapes = [], seen = {};
      var labels = [];
      rows.forEach(function (r) { if (labels.indexOf(r.label) < 0 && (target === "sentiment" || r.label !== "none")) { labels.push(r.label); } });
      rows.forEach(function (r) {
        if (r.too_few && !seen[r.period]) {
          seen[r.period] = true;
          shapes.push({type: "rect", xref: "x", yref: "paper", x0: r.period_start, x1: r.period_end, y0: 0, y1: 1, fillcolor: "#e5e5e5", opacity: 0.6, line: {width: 0}, layer: "below"});
        }
      });
      labels.forEach(function (label) {
        var part = rows.filter(function (r) { return r.label === label; });
        var corrected = part.some(function (r) { return r.share !== null; });
        var x = part.map(mid), c = COLOURS[label] || "#1f77b4";
        function col(name) { return part.map(function (r) { return r.too_few ? null : r[name]; }); }
        var y = col(corrected ? "share" : "share_raw"), lo = col(corrected ? "ci_low" : "raw_ci_low"), hi = col(corrected ? "ci_high" : "raw_ci_high");
        traces.push({x: x, y: lo, mode: "lines", line: {width: 0, color: c}, hoverinfo: "skip", showlegend: false, legendgroup: label});
        traces.push({x: x, y: hi, mode: "lines", line: {width: 0, color: c}, fill: "tonexty", fillcolor: c + "30", name: label + " 95 %", hoverinfo: "skip", showlegend: false, legendgroup: label});
        traces.push({x: x, y: y, mode: "lines+markers", line: {color: c}, name: label + (corrected ? " corrected" : ""), legendgroup: label,
                     hovertemplate: "%{x}: %{y:.1%}<extra>" + label + "</extra>"});
        if (corrected) {
          traces.push({x: x, y: col("share_raw"), mode: "lines+markers", line: {color: c, dash: "dot", width: 1}, marker: {symbol: "line-ew-open", size: 9},
                       name: label + " raw", legendgroup: label, hovertemplate: "%{x}: raw %{y:.1%}<extra>" + label + "</extra>"});
        }
      });
      Plotly.newPlot(el, traces, {title: {text: target, x: 0, font: {size: 14}}, height: 260, margin: {l: 50, r: 10, t: 30, b: 30},
                                  yaxis: {range: [0, 1], tickformat: ".0%"}, xaxis: {type: "date"}, shapes: shapes, legend: {font: {size: 10}}},
                     {displaylogo: false, responsive: true});
      el.setAttribute("data-drawn", "1");
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (evt) { draw(evt.detail.elt || document); });
})();
