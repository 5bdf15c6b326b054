// Playground: one chat to any model or `auto`, streamed, then the gateway's routing decision,
// cost and latency from its x-llmproxy-* response headers.
import { api, chat, sseData } from "./api.js";
import { clear, field, fmt, h } from "./dom.js";

let controller = null;

export function leave() {
  if (controller) controller.abort();
  controller = null;
}

export async function render(page) {
  const model = h("select", { name: "model", id: "pg-model" });
  const system = h("textarea", { name: "system", id: "pg-system", rows: "2", placeholder: "Optional" });
  const prompt = h("textarea", { name: "prompt", id: "pg-prompt", rows: "4", required: true });
  const stream = h("input", { type: "checkbox", name: "stream", id: "pg-stream", checked: true });
  const maxTokens = h("input", { type: "number", name: "max_tokens", id: "pg-max", min: "1", inputmode: "numeric" });
  const send = h("button", { type: "submit", id: "pg-send" }, "Send");
  const stop = h("button", { type: "button", class: "secondary", disabled: true, onclick: () => controller && controller.abort() }, "Stop");
  const answer = h("div", { class: "answer", id: "pg-answer", role: "log", "aria-live": "polite", "aria-label": "Answer", "data-testid": "answer" });
  const decision = h("div", { id: "pg-decision", "data-testid": "decision" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card form-grid playground", "aria-labelledby": "pg-title" },
    h("h2", { id: "pg-title", class: "sr-only" }, "Request"),
    field("Model", model, "auto lets the gateway choose; auto:cost, auto:quality and auto:latency pick a strategy."),
    field("System prompt", system),
    field("Message", prompt),
    field("Max tokens", maxTokens, "Empty: the model's default."),
    h("label", { class: "inline" }, stream, " Stream the answer"),
    h("div", { class: "actions" }, send, stop),
    error);
  page.append(h("div", { class: "page-head" }, h("h1", {}, "Playground")), form,
    h("section", { class: "card", "aria-labelledby": "answer-title" }, h("h2", { id: "answer-title" }, "Answer"), answer, decision));

  const [list, registry] = await Promise.all([api("GET", "/v1/models"), api("GET", "/admin/models").catch(() => ({ data: [] }))]);
  const prices = new Map(registry.data.map((m) => [m.id, m]));
  clear(model, list.data.map((m) => h("option", { value: m.id, selected: m.id === "auto" }, m.id)));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!prompt.value.trim()) {
      error.textContent = "Write a message first.";
      prompt.focus();
      return;
    }
    const messages = [];
    if (system.value.trim()) messages.push({ role: "system", content: system.value });
    messages.push({ role: "user", content: prompt.value });
    const body = { model: model.value, messages, stream: stream.checked };
    if (stream.checked) body.stream_options = { include_usage: true };
    if (maxTokens.value) body.max_tokens = parseInt(maxTokens.value, 10);
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    clear(answer);
    clear(decision);
    answer.setAttribute("aria-busy", "true");
    const started = performance.now();
    let firstToken = null;
    let usage = null;
    let response = null;
    try {
      response = await chat(body, controller.signal);
      if (stream.checked) {
        for await (const data of sseData(response)) {
          if (data === "[DONE]") break;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message || "the stream failed");
          if (chunk.usage) usage = chunk.usage;
          const text = chunk.choices && chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content;
          if (text) {
            if (firstToken === null) firstToken = performance.now() - started;
            answer.append(text);
          }
        }
      } else {
        const completion = await response.json();
        usage = completion.usage || null;
        firstToken = performance.now() - started;
        answer.append(completion.choices?.[0]?.message?.content ?? "");
      }
    } catch (e) {
      error.textContent = e.name === "AbortError" ? "Stopped." : e.message;
    } finally {
      answer.setAttribute("aria-busy", "false");
      send.disabled = false;
      stop.disabled = true;
      controller = null;
    }
    if (response) showDecision(decision, response.headers, usage, performance.now() - started, firstToken, prices);
  });
}

function showDecision(box, headers, usage, totalMs, firstMs, prices) {
  const get = (name) => headers.get(`x-llmproxy-${name}`);
  const modelId = get("model");
  let cost = get("cost-usd") !== null ? fmt.usd(Number(get("cost-usd"))) : null;
  if (cost === null && usage && prices.has(modelId)) {
    // A stream's headers leave before its cost is known: estimate it from the usage and list prices.
    const m = prices.get(modelId);
    if (m.input_per_mtok !== null && m.output_per_mtok !== null) {
      const cached = usage.prompt_tokens_details?.cached_tokens || 0;
      const cachedPrice = m.cached_input_per_mtok ?? m.input_per_mtok;
      const usd = ((usage.prompt_tokens - cached) * m.input_per_mtok + cached * cachedPrice + usage.completion_tokens * m.output_per_mtok) / 1e6;
      cost = `≈ ${fmt.usd(usd)} (from list prices)`;
    }
  }
  const items = [
    ["Model", modelId || "–"],
    ["Provider", get("provider") || "–"],
    ["Complexity", get("complexity") || "–"],
    ["Strategy", get("strategy") || "explicit model"],
    ["Cache", get("cache") || "–"],
    ["Cost", cost || "unknown"],
    ["Tokens", usage ? `${fmt.int(usage.prompt_tokens)} in · ${fmt.int(usage.completion_tokens)} out` : "–"],
    ["Latency", fmt.ms(totalMs)],
    ["First token", fmt.ms(firstMs)],
    ["Gateway overhead", get("overhead-ms") !== null ? fmt.ms(Number(get("overhead-ms"))) : "–"],
    ["Request id", headers.get("x-request-id") || "–"],
  ];
  clear(box, h("h3", {}, "Routing decision"),
    h("dl", { class: "decision" }, items.map(([term, value]) => h("div", { "data-field": term.toLowerCase().replace(/ /g, "-") }, h("dt", {}, term), h("dd", {}, value)))));
}
