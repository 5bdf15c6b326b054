// Building the page without innerHTML: every piece of data becomes a text node, never markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    // true sets the attribute, so checked/selected are also the defaults form.reset() returns to.
    else if (value === true) el.setAttribute(name, "");
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let toastTimer = null;
export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 3500);
}

// A labelled form field: <label for> + control, wrapped for layout.
let fieldIds = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldIds}`;
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "muted" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

// A wide table scrolls on its own on a narrow screen; the region makes it reachable by keyboard.
export function scroller(label, table) {
  return h("div", { class: "scroll", role: "region", "aria-label": label, tabindex: "0" }, table);
}

export const fmt = {
  usd(value, digits) {
    if (value === null || value === undefined) return "–";
    const abs = Math.abs(value);
    const d = digits ?? (abs === 0 ? 2 : abs < 0.01 ? 6 : abs < 1 ? 4 : 2);
    return `$${value.toFixed(d)}`;
  },
  int(value) { return value === null || value === undefined ? "–" : Math.round(value).toLocaleString("en-US"); },
  pct(value) { return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`; },
  ms(value) {
    if (value === null || value === undefined) return "–";
    return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(value < 10 ? 1 : 0)} ms`;
  },
  price(value) { return value === null || value === undefined ? "unknown" : `$${Number(value).toFixed(value < 1 ? 3 : 2)}`; },
  date(seconds) {
    if (!seconds) return "–";
    return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ");
  },
  ago(iso) {
    if (!iso) return "never";
    const s = (Date.now() - Date.parse(iso)) / 1000;
    if (Number.isNaN(s)) return iso;
    if (s < 90) return "just now";
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 129600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  },
};
