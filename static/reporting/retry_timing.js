/* Draws the retry timing page's calibration chart with the vendored Chart.js: actual success against mean
 * predicted success, one point per decile, with its 95 % interval in the tooltip, and the diagonal where a
 * calibrated model's points lie. The data is in the JSON script element "chart-calibration-data". */
(function () {
  "use strict";

  function percent(value) {
    return (value * 100).toFixed(1) + " %";
  }

  function draw() {
    var canvas = document.getElementById("chart-calibration");
    var source = document.getElementById("chart-calibration-data");
    if (!canvas || !source || typeof window.Chart === "undefined") {
      return;
    }
    var points = JSON.parse(source.textContent).points;
    var axis = function (title) {
      return {
        type: "linear",
        min: 0,
        max: 1,
        title: { display: true, text: title },
        ticks: { callback: function (value) { return Math.round(value * 100) + " %"; } },
      };
    };
    new window.Chart(canvas, {
      type: "scatter",
      data: {
        datasets: [
          {
            label: "Deciles",
            data: points,
            pointRadius: 5,
          },
          {
            label: "Perfect calibration",
            data: [{ x: 0, y: 0 }, { x: 1, y: 1 }],
            showLine: true,
            pointRadius: 0,
            borderDash: [6, 4],
          },
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { x: axis("Mean predicted success"), y: axis("Actual success") },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (context) {
                var p = context.raw;
                if (p.decile === undefined) {
                  return "Perfect calibration";
                }
                return "Decile " + p.decile + " (" + p.retries + " retries): predicted " + percent(p.x) +
                  ", actual " + percent(p.y) + " (95 % interval " + percent(p.low) + " – " + percent(p.high) + ")";
              },
            },
          },
        },
      },
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
