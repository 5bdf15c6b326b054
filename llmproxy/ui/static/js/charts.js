// Time-series charts with the vendored uPlot (window.uPlot, loaded before this module runs).
// Colours come from the page's CSS variables, so the charts follow the light or dark scheme.

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

const charts = new Set();
let observer = null;

function watchSize() {
  if (observer) return;
  observer = new ResizeObserver(() => {
    for (const chart of charts) {
      if (!chart.root.isConnected) {
        chart.destroy();
        charts.delete(chart);
        continue;
      }
      const width = chart.root.parentElement.clientWidth;
      if (width && Math.abs(width - chart.width) > 2) chart.setSize({ width, height: chart.height });
    }
  });
  observer.observe(document.body);
}

// One chart in `box`: x = unix seconds, each series {label, values, color: "--css-var", format}.
export function lineChart(box, { times, series, yFormat, axisFormat, height = 180, bars = false }) {
  if (!window.uPlot) {
    box.textContent = "Charts unavailable (uPlot did not load).";
    return null;
  }
  const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--grid"), width: 1 }, ticks: { stroke: cssVar("--grid") } };
  const paths = bars ? window.uPlot.paths.bars({ size: [0.7, 40] }) : undefined;
  const opts = {
    width: Math.max(240, box.clientWidth || 320),
    height,
    legend: { show: true, live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [
      { ...axis },
      { ...axis, size: 72, values: (u, ticks) => ticks.map((v) => (axisFormat || yFormat)(v)) },
    ],
    series: [
      { label: "time" },
      ...series.map((s) => ({
        label: s.label,
        stroke: cssVar(s.color),
        fill: bars ? cssVar(s.color) + "bb" : undefined,
        width: 2,
        paths,
        // A series with gaps (latency: no requests, no value) shows its points; lines need neighbours.
        points: { show: s.points || times.length < 3, size: 6 },
        value: (u, v) => (v === null || v === undefined ? "–" : (s.format || yFormat)(v)),
      })),
    ],
  };
  const chart = new window.uPlot(opts, [times, ...series.map((s) => s.values)], box);
  charts.add(chart);
  watchSize();
  return chart;
}
