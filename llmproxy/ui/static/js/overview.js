// Overview: requests, spend, tokens, cache hit rate, latency and errors over a time range, by
// model and provider, and what auto routing saved against the frontier model (GET /admin/overview).
import { api } from "./api.js";
import { clear, field, fmt, h, scroller } from "./dom.js";
import { lineChart } from "./charts.js";

const RANGES = [
  ["1h", "Last hour", 3600],
  ["24h", "Last 24 hours", 86400],
  ["7d", "Last 7 days", 7 * 86400],
  ["30d", "Last 30 days", 30 * 86400],
];
let chosen = "24h";

export async function render(page) {
  const select = h("select", { id: "range", onchange: () => { chosen = select.value; load(body); } },
    RANGES.map(([value, label]) => h("option", { value, selected: value === chosen }, label)));
  const refresh = h("button", { type: "button", class: "secondary", onclick: () => load(body) }, "Refresh");
  const body = h("div", { class: "overview-body", "aria-live": "polite", "aria-busy": "true" });
  page.append(
    h("div", { class: "page-head" },
      h("h1", {}, "Overview"),
      h("div", { class: "controls" }, field("Time range", select), refresh)),
    body);
  await load(body);
}

async function load(body) {
  const [, , seconds] = RANGES.find(([value]) => value === chosen);
  const until = Date.now() / 1000;
  const since = until - seconds;
  body.setAttribute("aria-busy", "true");
  let data;
  try {
    data = await api("GET", `/admin/overview?since=${since.toFixed(3)}&until=${until.toFixed(3)}`);
  } catch (error) {
    clear(body, h("p", { class: "error", role: "alert" }, error.message));
    body.setAttribute("aria-busy", "false");
    return;
  }
  const t = data.totals;
  const tokens = t.prompt_tokens + t.completion_tokens;
  clear(body,
    h("section", { class: "tiles", "aria-label": "Totals" },
      tile("requests", "Requests", fmt.int(t.requests)),
      tile("spend", "Spend", fmt.usd(t.cost_usd)),
      tile("tokens", "Tokens", fmt.int(tokens), `${fmt.int(t.prompt_tokens)} in · ${fmt.int(t.completion_tokens)} out`),
      tile("cache-hit-rate", "Cache hit rate", fmt.pct(t.cache_hit_rate), `${fmt.int(t.cache_hits)} hits · saved ${fmt.usd(t.cache_saved_usd)}`),
      tile("p50", "p50 latency", fmt.ms(t.p50_ms)),
      tile("p99", "p99 latency", fmt.ms(t.p99_ms)),
      tile("error-rate", "Error rate", fmt.pct(t.error_rate), `${fmt.int(t.errors)} error${t.errors === 1 ? "" : "s"}`),
      tile("auto-saved", "Auto routing saved", fmt.usd(data.auto.saved_usd),
        data.auto.frontier_model ? `vs ${data.auto.frontier_model}` : "no priced frontier model")),
    savings(data.auto),
    h("section", { class: "charts", "aria-label": "Charts" },
      chartFigure("chart-requests", "Requests and errors", data),
      chartFigure("chart-spend", "Spend (USD)", data),
      chartFigure("chart-latency", "Latency p50 / p99", data),
      chartFigure("chart-tokens", "Tokens", data)),
    breakdown("By model", "by-model", data.by_model, true),
    breakdown("By provider", "by-provider", data.by_provider, false));
  drawCharts(body, data);
  body.setAttribute("aria-busy", "false");
}

function tile(id, label, value, detail) {
  return h("div", { class: "tile", "data-testid": `tile-${id}` },
    h("div", { class: "tile-label", id: `tile-${id}-label` }, label),
    h("div", { class: "tile-value", "aria-describedby": `tile-${id}-label` }, value),
    detail ? h("div", { class: "tile-detail muted" }, detail) : null);
}

function savings(auto) {
  const text = auto.requests === 0
    ? "No auto-routed requests in this range."
    : auto.frontier_model === null
      ? `${fmt.int(auto.requests)} auto-routed requests cost ${fmt.usd(auto.cost_usd)}; no priced model to compare with.`
      : `${fmt.int(auto.requests)} auto-routed requests cost ${fmt.usd(auto.cost_usd)}; sent to ${auto.frontier_model} ` +
        `they would have cost ${fmt.usd(auto.frontier_cost_usd)}, so auto saved ${fmt.usd(auto.saved_usd)}` +
        (auto.frontier_cost_usd > 0 ? ` (${fmt.pct(auto.saved_usd / auto.frontier_cost_usd)}).` : ".");
  return h("section", { class: "card savings", "aria-labelledby": "savings-title" },
    h("h2", { id: "savings-title" }, "Auto routing vs the frontier model"),
    h("p", { "data-testid": "savings-text" }, text),
    h("p", { class: "muted small" }, `Definition: ${auto.definition}. The frontier model is the highest-quality priced model the gateway can call.`));
}

function chartFigure(id, caption, data) {
  const s = data.series;
  let summary = "";
  if (id === "chart-requests") summary = `${fmt.int(data.totals.requests)} requests, ${fmt.int(data.totals.errors)} errors, peak ${fmt.int(Math.max(0, ...s.map((b) => b.requests)))} per ${bucketName(data.bucket_s)}`;
  if (id === "chart-spend") summary = `${fmt.usd(data.totals.cost_usd)} in total`;
  if (id === "chart-latency") summary = `p50 ${fmt.ms(data.totals.p50_ms)}, p99 ${fmt.ms(data.totals.p99_ms)} over the range`;
  if (id === "chart-tokens") summary = `${fmt.int(data.totals.tokens)} tokens in total`;
  return h("figure", { class: "card chart" },
    h("figcaption", {}, `${caption} per ${bucketName(data.bucket_s)}`),
    h("div", { class: "chart-box", id, role: "img", "aria-label": `${caption}: ${summary}` }));
}

function bucketName(seconds) {
  if (seconds % 86400 === 0) return seconds === 86400 ? "day" : `${seconds / 86400} days`;
  if (seconds % 3600 === 0) return seconds === 3600 ? "hour" : `${seconds / 3600} hours`;
  return seconds === 60 ? "minute" : `${seconds / 60} minutes`;
}

function drawCharts(body, data) {
  const times = data.series.map((b) => b.t);
  const col = (name) => data.series.map((b) => b[name]);
  const box = (id) => body.querySelector(`#${id}`);
  lineChart(box("chart-requests"), {
    times, bars: true, yFormat: (v) => fmt.int(v),
    series: [{ label: "requests", values: col("requests"), color: "--accent" },
      { label: "errors", values: col("errors"), color: "--danger" }],
  });
  lineChart(box("chart-spend"), {
    times, yFormat: (v) => fmt.usd(v), axisFormat: (v) => (v === 0 ? "$0" : `$${Number(v.toPrecision(2))}`),
    series: [{ label: "spend", values: col("cost_usd"), color: "--accent" }],
  });
  lineChart(box("chart-latency"), {
    times, yFormat: (v) => fmt.ms(v),
    series: [{ label: "p50", values: col("p50_ms"), color: "--accent", points: true },
      { label: "p99", values: col("p99_ms"), color: "--warn", points: true }],
  });
  lineChart(box("chart-tokens"), {
    times, bars: true, yFormat: (v) => fmt.int(v),
    series: [{ label: "prompt", values: col("prompt_tokens"), color: "--accent" },
      { label: "completion", values: col("completion_tokens"), color: "--accent-2" }],
  });
}

function breakdown(title, id, rows, withModel) {
  const top = Math.max(0, ...rows.map((r) => r.cost_usd));
  const head = ["Requests", "Spend", "Tokens", "Cache hits", "p50", "p99", "Errors"];
  const table = h("table", { class: "data", "data-testid": id },
    h("thead", {}, h("tr", {},
      withModel ? h("th", { scope: "col" }, "Model") : null,
      h("th", { scope: "col" }, "Provider"),
      head.map((name) => h("th", { scope: "col", class: "num" }, name)))),
    h("tbody", {}, rows.length === 0
      ? h("tr", {}, h("td", { colspan: head.length + (withModel ? 2 : 1) }, "No requests in this range."))
      : rows.map((r) => {
        const bar = h("span", { class: "bar", "aria-hidden": "true" });
        bar.style.width = `${top > 0 ? Math.round((r.cost_usd / top) * 100) : 0}%`;
        return h("tr", {},
          withModel ? h("th", { scope: "row" }, r.model || "(none)") : null,
          withModel ? h("td", {}, r.provider || "–") : h("th", { scope: "row" }, r.provider || "(none)"),
          h("td", { class: "num" }, fmt.int(r.requests)),
          h("td", { class: "num spend" }, fmt.usd(r.cost_usd), bar),
          h("td", { class: "num" }, fmt.int(r.tokens)),
          h("td", { class: "num" }, fmt.pct(r.cache_hit_rate)),
          h("td", { class: "num" }, fmt.ms(r.p50_ms)),
          h("td", { class: "num" }, fmt.ms(r.p99_ms)),
          h("td", { class: "num" }, fmt.pct(r.error_rate)));
      })));
  return h("section", { class: "card", "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title), scroller(title, table));
}
