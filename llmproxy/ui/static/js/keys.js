// Keys: create (the value shown once, with a copy button), list, edit limits and budget, rotate,
// revoke. The API decides what a caller sees: an admin every key, a user only their own.
import { api, session } from "./api.js";
import { clear, field, fmt, h, scroller, toast } from "./dom.js";

let showRevoked = false;

export async function render(page) {
  const list = h("div", { id: "key-list" });
  const secret = h("div", { id: "new-key" });
  page.append(
    h("div", { class: "page-head" }, h("h1", {}, "API keys")),
    secret,
    createForm(list, secret),
    h("section", { class: "card", "aria-labelledby": "keys-title" },
      h("div", { class: "section-head" },
        h("h2", { id: "keys-title" }, session.isAdmin ? "All keys" : "Your keys"),
        h("label", { class: "inline" },
          h("input", { type: "checkbox", checked: showRevoked, onchange: (e) => { showRevoked = e.target.checked; load(list, secret); } }),
          " Show revoked")),
      list));
  await load(list, secret);
}

function limitFields(values = {}) {
  const num = (name, label, hint, step = "1") => field(label,
    h("input", { name, type: "number", min: "0", step, inputmode: "decimal", value: values[name] ?? "" }), hint);
  const period = h("select", { name: "budget_period" },
    ["day", "month", "total"].map((p) => h("option", { value: p, selected: (values.budget_period || "month") === p }, p)));
  return [
    field("Models", h("input", { name: "models", value: (values.models || []).join(", "), autocomplete: "off", spellcheck: "false" }),
      "Comma-separated; a trailing * matches a prefix. Empty: every model."),
    num("rpm", "Requests per minute", "Empty: the gateway default."),
    num("tpm", "Tokens per minute", "Empty: the gateway default."),
    num("budget_usd", "Budget (USD)", "Empty: no budget.", "0.01"),
    field("Budget period", period),
  ];
}

// The form's limit fields as the API wants them (null clears a limit).
function limitValues(form) {
  const data = new FormData(form);
  const number = (name, parse) => {
    const text = String(data.get(name) ?? "").trim();
    return text === "" ? null : parse(text);
  };
  const models = String(data.get("models") ?? "").split(",").map((m) => m.trim()).filter(Boolean);
  return {
    models: models.length ? models : null,
    rpm: number("rpm", (t) => parseInt(t, 10)),
    tpm: number("tpm", (t) => parseInt(t, 10)),
    budget_usd: number("budget_usd", Number),
    budget_period: data.get("budget_period") || "month",
  };
}

function createForm(list, secret) {
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card form-grid", "aria-labelledby": "create-title" },
    h("h2", { id: "create-title" }, "Create a key"),
    field("Name", h("input", { name: "name", required: true, maxlength: "200", autocomplete: "off" })),
    session.isAdmin ? [
      field("Owner", h("input", { name: "owner", autocomplete: "off", spellcheck: "false" }), "A user name, or empty."),
      ...limitFields(),
    ] : null,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create key")),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const name = form.elements.name.value.trim();
    if (!name) {
      error.textContent = "Give the key a name.";
      form.elements.name.focus();
      return;
    }
    const body = { name };
    if (session.isAdmin) {
      Object.assign(body, limitValues(form));
      const owner = form.elements.owner.value.trim();
      if (owner) body.owner = owner;
    }
    try {
      const created = await api("POST", "/admin/keys", body);
      form.reset();
      showSecret(secret, `Key “${created.name}” created`, created.key);
      await load(list, secret);
    } catch (e) {
      error.textContent = e.message;
    }
  });
  return form;
}

// The key's value, this once: a read-only field and a copy button.
function showSecret(box, title, value) {
  const input = h("input", { id: "new-key-value", readonly: true, value, spellcheck: "false", "data-testid": "new-key-value" });
  const status = h("p", { class: "muted", role: "status" });
  const copy = h("button", { type: "button", onclick: async () => {
    try {
      await navigator.clipboard.writeText(value);
      status.textContent = "Copied.";
    } catch {
      input.select();
      status.textContent = document.execCommand && document.execCommand("copy") ? "Copied." : "Select the key and copy it.";
    }
  } }, "Copy");
  clear(box, h("section", { class: "card secret", role: "alert", "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, title),
    h("p", {}, "Copy this key now: it is shown only once and cannot be read again."),
    h("div", { class: "copy-row" }, h("label", { for: "new-key-value", class: "sr-only" }, "New API key"), input, copy),
    status,
    h("button", { type: "button", class: "secondary", onclick: () => clear(box) }, "Done")));
  input.focus();
  input.select();
}

async function load(list, secret) {
  let data;
  try {
    data = await api("GET", "/admin/keys");
  } catch (e) {
    clear(list, h("p", { class: "error", role: "alert" }, e.message));
    return;
  }
  const keys = data.data.filter((k) => showRevoked || !k.revoked_at).sort((a, b) => b.created_at - a.created_at);
  const table = h("table", { class: "data", "data-testid": "keys-table" },
    h("thead", {}, h("tr", {},
      ["Name", "Prefix", "Owner", "Models", "Limits", "Budget", "Created", "Status", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, keys.length === 0
      ? h("tr", {}, h("td", { colspan: "9" }, "No keys yet."))
      : keys.map((k) => keyRow(k, list, secret))));
  clear(list, scroller("Keys", table));
}

function keyRow(k, list, secret) {
  const revoked = Boolean(k.revoked_at);
  const limits = `${k.rpm ?? "default"} rpm · ${k.tpm ?? "default"} tpm`;
  const budget = k.budget_usd === null ? "none" : `${fmt.usd(k.budget_usd, 2)} / ${k.budget_period}`;
  const row = h("tr", { "data-key-id": k.id, class: revoked ? "revoked" : "" },
    h("th", { scope: "row" }, k.name, h("div", { class: "muted small" }, k.id)),
    h("td", {}, h("code", {}, k.prefix ? `${k.prefix}…` : "–")),
    h("td", {}, k.owner || "–"),
    h("td", {}, k.models ? k.models.join(", ") : "all"),
    h("td", {}, limits),
    h("td", {}, budget),
    h("td", {}, fmt.date(k.created_at)),
    h("td", {}, revoked ? h("span", { class: "badge bad" }, "revoked") : h("span", { class: "badge ok" }, "active")),
    h("td", { class: "row-actions" }, revoked ? null : [
      session.isAdmin ? h("button", { type: "button", class: "secondary", "aria-label": `Edit ${k.name}`, onclick: () => edit(row, k, list, secret) }, "Edit") : null,
      h("button", { type: "button", class: "secondary", "aria-label": `Rotate ${k.name}`, onclick: () => rotate(k, list, secret) }, "Rotate"),
      h("button", { type: "button", class: "danger", "aria-label": `Revoke ${k.name}`, onclick: () => revoke(k, list, secret) }, "Revoke"),
    ]));
  return row;
}

function edit(row, k, list, secret) {
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "form-grid edit", "aria-label": `Edit ${k.name}` },
    field("Name", h("input", { name: "name", value: k.name, required: true, maxlength: "200" })),
    ...limitFields(k),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Save"),
      h("button", { type: "button", class: "secondary", onclick: () => load(list, secret) }, "Cancel")),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("PATCH", `/admin/keys/${encodeURIComponent(k.id)}`, { name: form.elements.name.value.trim(), ...limitValues(form) });
      toast(`Saved ${k.name}.`);
      await load(list, secret);
    } catch (e) {
      error.textContent = e.message;
    }
  });
  const cell = h("td", { colspan: "9" }, form);
  const editor = h("tr", { class: "editor" }, cell);
  row.after(editor);
  form.elements.name.focus();
}

async function rotate(k, list, secret) {
  if (!confirm(`Rotate “${k.name}”? The old value keeps working for the grace period, then stops.`)) return;
  try {
    const rotated = await api("POST", `/admin/keys/${encodeURIComponent(k.id)}/rotate`, {});
    showSecret(secret, `Key “${k.name}” rotated`, rotated.key);
    await load(list, secret);
  } catch (e) {
    toast(e.message);
  }
}

async function revoke(k, list, secret) {
  if (!confirm(`Revoke “${k.name}”? Requests with it will be refused from now on.`)) return;
  try {
    await api("DELETE", `/admin/keys/${encodeURIComponent(k.id)}`);
    toast(`Revoked ${k.name}.`);
    await load(list, secret);
  } catch (e) {
    toast(e.message);
  }
}
