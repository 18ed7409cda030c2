/* Draws the dashboard's charts with the vendored Chart.js. Each <canvas data-chart="slug"> has its data in
 * a JSON script element (id "chart-<slug>-data") rendered by the server; no data lives in this file. */
(function () {
  "use strict";

  function draw(canvas) {
    var source = document.getElementById("chart-" + canvas.dataset.chart + "-data");
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var config = JSON.parse(source.textContent);
    var horizontal = Boolean(config.horizontal);
    var valueAxis = horizontal ? "x" : "y";
    var scales = {};
    scales[valueAxis] = { beginAtZero: true, title: { display: true, text: config.y } };
    new window.Chart(canvas, {
      type: config.type,
      data: config.data,
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: horizontal ? "y" : "x",
        plugins: { legend: { display: config.data.datasets.length > 1 } },
        scales: scales,
      },
    });
  }

  function drawAll() {
    Array.prototype.forEach.call(document.querySelectorAll("canvas[data-chart]"), draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
