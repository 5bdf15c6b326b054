// Models: the registry as a sortable table, each provider's scrape status and staleness, the
// version history with the diff between two versions, and a refresh that runs the scrapers.
import { api, session } from "./api.js";
import { clear, field, fmt, h, scroller } from "./dom.js";

const COLUMNS = [
  ["id", "Model", "text"],
  ["provider", "Provider", "text"],
  ["input_per_mtok", "Input $/Mtok", "num"],
  ["output_per_mtok", "Output $/Mtok", "num"],
  ["cached_input_per_mtok", "Cached $/Mtok", "num"],
  ["context_window", "Context", "num"],
  ["max_output_tokens", "Max output", "num"],
  ["capabilities", "Capabilities", "text"],
  ["quality", "Quality", "num"],
  ["updated_at", "Updated", "text"],
  ["source", "Source", "text"],
];
const CAPS = { json_schema: "json", streaming: "stream", reasoning: "reason" };   // short, so a row stays one line
const state = { sort: "id", dir: 1, filter: "", provider: "" };

export async function render(page) {
  const status = h("div", { id: "registry-status" });
  const table = h("div", { id: "models-table" });
  const outcome = h("div", { id: "refresh-outcome", "aria-live": "polite" });
  page.append(h("div", { class: "page-head" }, h("h1", {}, "Models")), status, outcome);
  const filter = h("input", { type: "search", value: state.filter, autocomplete: "off", spellcheck: "false",
    oninput: () => { state.filter = filter.value; draw(table, rows); } });
  const provider = h("select", { onchange: () => { state.provider = provider.value; draw(table, rows); } },
    h("option", { value: "" }, "All providers"));
  page.append(h("section", { class: "card", "aria-labelledby": "registry-title" },
    h("div", { class: "section-head" }, h("h2", { id: "registry-title" }, "Registry"),
      h("div", { class: "controls" }, field("Filter", filter), field("Provider", provider))),
    table));
  const versions = h("section", { class: "card", "aria-labelledby": "versions-title" });
  if (session.isAdmin) page.append(versions);

  let rows = [];
  const reload = async () => {
    const data = await api("GET", "/admin/models");
    rows = data.data;
    const names = [...new Set(rows.map((r) => r.provider))].sort();
    clear(provider, h("option", { value: "" }, "All providers"), names.map((n) => h("option", { value: n, selected: n === state.provider }, n)));
    drawStatus(status, data, rows, outcome, reload, versions);
    draw(table, rows);
    if (session.isAdmin) await drawVersions(versions);
  };
  await reload();
}

function drawStatus(box, data, rows, outcome, reload, versions) {
  const providers = Object.entries(data.providers || {});
  const refresh = h("button", { type: "button", id: "refresh-registry" }, "Refresh prices now");
  const force = h("input", { type: "checkbox", id: "refresh-force" });
  refresh.addEventListener("click", async () => {
    refresh.disabled = true;
    clear(outcome, h("p", { class: "card muted", role: "status" }, "Scraping the providers' pricing pages…"));
    try {
      const report = await api("POST", "/admin/registry/refresh", { force: force.checked });
      clear(outcome, refreshReport(report));
      await reload();
    } catch (e) {
      clear(outcome, h("p", { class: "card error", role: "alert" }, `Refresh failed: ${e.message}`));
    } finally {
      refresh.disabled = false;
    }
  });
  clear(box, h("section", { class: "card", "aria-labelledby": "status-title" },
    h("div", { class: "section-head" },
      h("h2", { id: "status-title" }, `Registry version ${data.version}`),
      session.isAdmin ? h("div", { class: "controls" },
        h("label", { class: "inline" }, force, " Force (accept big changes)"), refresh) : null),
    h("p", { class: "muted" }, `${rows.length} models · generated ${data.generated_at || "–"}`),
    h("ul", { class: "providers" }, providers.map(([name, p]) => {
      const stale = rows.filter((r) => r.provider === name && r.stale).length;
      const good = p.status === "ok" || p.status === "seeded";
      return h("li", { class: "provider", "data-provider": name },
        h("strong", {}, name), " ",
        h("span", { class: `badge ${good && !stale ? "ok" : "bad"}` }, p.status || "unknown"),
        h("div", { class: "small" }, `last success ${fmt.ago(p.last_success)} · last attempt ${fmt.ago(p.last_attempt)}`),
        stale ? h("div", { class: "small warn-text" }, `${stale} model${stale === 1 ? "" : "s"} with possibly stale prices`) : null,
        p.message ? h("div", { class: "small muted" }, p.message) : null);
    }))));
}

function refreshReport(report) {
  const d = report.diff;
  return h("section", { class: "card", "data-testid": "refresh-report", "aria-labelledby": "report-title" },
    h("h2", { id: "report-title" }, report.version === report.previous_version
      ? `Refresh done: still version ${report.version}`
      : `Refresh done: version ${report.previous_version} → ${report.version}`),
    h("p", {}, `${d.added.length} added · ${d.removed.length} removed · ${plural(d.changed.length, "price change")}`),
    h("ul", {}, Object.entries(report.providers).map(([name, o]) =>
      h("li", { "data-provider": name },
        h("strong", {}, name), " ", h("span", { class: `badge ${o.status === "ok" ? "ok" : "bad"}` }, o.status),
        ` ${o.message}`, o.updated ? ` (${o.updated} priced)` : ""))),
    d.changed.length ? changesTable(d.changed, "Price changes in this refresh") : null);
}

function plural(n, noun) { return `${n} ${noun}${n === 1 ? "" : "s"}`; }

function value(row, key) {
  const v = row[key];
  return key === "capabilities" ? v.join(" ") : v;
}

function draw(box, rows) {
  const needle = state.filter.trim().toLowerCase();
  const shown = rows
    .filter((r) => !state.provider || r.provider === state.provider)
    .filter((r) => !needle || `${r.id} ${r.aliases.join(" ")} ${r.provider_model}`.toLowerCase().includes(needle))
    .sort((a, b) => {
      const x = value(a, state.sort);
      const y = value(b, state.sort);
      if (x === y) return a.id.localeCompare(b.id);
      if (x === null || x === undefined) return 1;   // unknown values last in both directions
      if (y === null || y === undefined) return -1;
      return (typeof x === "number" ? x - y : String(x).localeCompare(String(y))) * state.dir;
    });
  const header = COLUMNS.map(([key, label, kind]) => {
    const sorted = state.sort === key;
    const button = h("button", { type: "button", class: "sort", onclick: () => {
      state.dir = sorted ? -state.dir : kind === "num" ? -1 : 1;
      state.sort = key;
      draw(box, rows);
      box.querySelector(`[data-sort="${key}"] button`).focus();
    } }, label, h("span", { "aria-hidden": "true" }, sorted ? (state.dir > 0 ? " ▲" : " ▼") : ""));
    return h("th", { scope: "col", class: kind === "num" ? "num" : "", "data-sort": key,
      "aria-sort": sorted ? (state.dir > 0 ? "ascending" : "descending") : "none" }, button);
  });
  const table = h("table", { class: "data models", "data-testid": "models-table" },
    h("caption", { class: "sr-only" }, `${shown.length} of ${rows.length} models; column buttons sort`),
    h("thead", {}, h("tr", {}, header)),
    h("tbody", {}, shown.map((r) => h("tr", { class: r.deprecated ? "deprecated" : "", "data-model": r.id },
      h("th", { scope: "row" }, r.id, r.deprecated ? h("span", { class: "badge" }, "deprecated") : null,
        r.stale ? h("span", { class: "badge bad", title: "the last scrape of this provider failed" }, "stale") : null),
      h("td", {}, r.provider),
      h("td", { class: "num" }, fmt.price(r.input_per_mtok)),
      h("td", { class: "num" }, fmt.price(r.output_per_mtok)),
      h("td", { class: "num" }, r.cached_input_per_mtok === null ? "–" : fmt.price(r.cached_input_per_mtok)),
      h("td", { class: "num" }, fmt.int(r.context_window)),
      h("td", { class: "num" }, fmt.int(r.max_output_tokens)),
      h("td", { class: "caps", title: r.capabilities.join(", ") }, r.capabilities.map((c) => CAPS[c] || c).join(" · ")),
      h("td", { class: "num", title: r.quality_source || "" }, r.quality === null ? "–" : r.quality.toFixed(1)),
      h("td", {}, r.updated_at || "–"),
      h("td", { class: "source small", title: r.source || "" }, r.source || "–")))));
  clear(box, scroller("Registry models", table));
}

async function drawVersions(box) {
  let data;
  try {
    data = await api("GET", "/admin/registry/versions");
  } catch (e) {
    clear(box, h("h2", { id: "versions-title" }, "Versions"), h("p", { class: "error" }, e.message));
    return;
  }
  const list = data.versions.slice().reverse();
  const options = (selected) => list.map((v) => h("option", { value: v.version, selected: v.version === selected },
    `v${v.version} · ${v.generated_at}`));
  const older = list.length > 1 ? list[1].version : data.current;
  const a = h("select", { name: "a" }, options(older));
  const b = h("select", { name: "b" }, options(data.current));
  const result = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "controls diff-form" }, field("From", a), field("To", b),
    h("button", { type: "submit" }, "Show diff"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const diff = await api("GET", `/admin/registry/diff?a=${a.value}&b=${b.value}`);
      clear(result, h("p", { "data-testid": "diff-summary" },
        `v${diff.from_version} → v${diff.to_version}: ${diff.added.length} added, ${diff.removed.length} removed, ${plural(diff.changed.length, "price change")}`),
      diff.added.length ? h("p", {}, `Added: ${diff.added.join(", ")}`) : null,
      diff.removed.length ? h("p", {}, `Removed: ${diff.removed.join(", ")}`) : null,
      diff.changed.length ? changesTable(diff.changed, "Price changes") : null);
    } catch (e) {
      clear(result, h("p", { class: "error", role: "alert" }, e.message));
    }
  });
  const history = h("table", { class: "data" },
    h("thead", {}, h("tr", {}, ["Version", "Generated", "Reason", "Models", "Added", "Removed", "Changed"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, list.map((v) => h("tr", {},
      h("th", { scope: "row" }, `v${v.version}`, v.version === data.current ? h("span", { class: "badge ok" }, "current") : null),
      h("td", {}, v.generated_at), h("td", {}, v.reason || "–"), h("td", { class: "num" }, v.models),
      h("td", { class: "num" }, v.added), h("td", { class: "num" }, v.removed), h("td", { class: "num" }, v.changed)))));
  clear(box, h("h2", { id: "versions-title" }, "Versions"),
    list.length ? [form, result, scroller("Registry versions", history)] : h("p", { class: "muted" }, "No versions written yet."));
}

function changesTable(changes, label) {
  // The diff covers price fields (USD per million tokens) and the long-context tier (an object).
  const show = (v) => (v === null || v === undefined ? "–" : typeof v === "number" ? fmt.price(v)
    : typeof v === "object" ? JSON.stringify(v) : String(v));
  return scroller(label, h("table", { class: "data", "data-testid": "changes" },
    h("caption", {}, label),
    h("thead", {}, h("tr", {}, ["Model", "Field", "Old", "New"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, changes.map((c) => h("tr", {},
      h("th", { scope: "row" }, c.id), h("td", {}, c.field), h("td", { class: "num" }, show(c.old)), h("td", { class: "num" }, show(c.new)))))));
}
