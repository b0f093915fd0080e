// Charts drawn with uPlot (served from /console/static/vendor, installed from npm by
// scripts/setup.sh). Values reach the chart as plain numbers for drawing only: every
// amount shown as text on a page is the API's exact decimal text.
import uPlot from "./vendor/uPlot.esm.js";

function width(container) {
  return Math.max(280, Math.min(container.clientWidth || 720, 1100));
}

// x: Unix seconds; the first series on the left axis, the second (bars) on the right.
export function lineChart(container, data, [left, right]) {
  const opts = {
    width: width(container), height: 240,
    series: [
      {},
      { label: left, stroke: "#1f6feb", width: 2, scale: "left", spanGaps: true },
      { label: right, stroke: "#c47f00", fill: "rgba(196,127,0,0.25)", scale: "right",
        paths: uPlot.paths.bars({ size: [0.6, 40] }) },
    ],
    axes: [{}, { scale: "left" }, { scale: "right", side: 1, grid: { show: false } }],
  };
  const chart = new uPlot(opts, data, container);
  new ResizeObserver(() => chart.setSize({ width: width(container), height: 240 })).observe(container);
  return chart;
}

// Bars per period (day, month or year): x is the period's position, labelled with its name.
export function barsChart(container, periods, columns, labels) {
  const colours = ["#2da44e", "#cf222e", "#1f6feb", "#8250df"];
  const opts = {
    width: width(container), height: 240,
    scales: { x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] } },
    axes: [
      { splits: () => periods.map((_, i) => i), values: (u, splits) => splits.map((i) => periods[i] ?? "") },
      { size: 90 },
    ],
    series: [{ label: "", value: (u, i) => (i === null ? "" : periods[i] ?? "") },
      ...labels.map((label, i) => ({ label, stroke: colours[i % colours.length],
        fill: colours[i % colours.length] + "55",
        paths: uPlot.paths.bars({ size: [0.7 / labels.length, 60], align: 1 }) }))],
  };
  const chart = new uPlot(opts, [periods.map((_, i) => i), ...columns], container);
  new ResizeObserver(() => chart.setSize({ width: width(container), height: 240 })).observe(container);
  return chart;
}
