// Drives the gateway's /v1/messages with the official TypeScript SDK (@anthropic-ai/sdk) and prints
// what it saw as one JSON line, for tests/doors/test_typescript_sdk.py to check.
// Environment: SDK_DIR (where the SDK is installed), BASE_URL, API_KEY, MODELS (comma-separated).
"use strict";
const { createRequire } = require("node:module");
const sdkRequire = createRequire(process.env.SDK_DIR + "/");
const AnthropicModule = sdkRequire("@anthropic-ai/sdk");
const Anthropic = AnthropicModule.default || AnthropicModule;

const tools = [
  { name: "get_weather", description: "Weather for a city",
    input_schema: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } }, required: ["city"] } },
  { name: "get_time", description: "Local time of a city",
    input_schema: { type: "object", properties: { city: { type: "string" }, format: { type: "string", enum: ["24h", "12h"] } } } },
];

async function errorName(promise) {
  try { await promise; return "none"; } catch (err) { return `${err.constructor.name}:${err.status}`; }
}

async function forModel(client, model) {
  const out = {};
  const created = await client.messages.create({ model, max_tokens: 128, messages: [{ role: "user", content: "hello there" }] });
  out.create = { text: created.content[0].text, stop: created.stop_reason, output: created.usage.output_tokens };

  const stream = client.messages.stream({ model, max_tokens: 128, messages: [{ role: "user", content: "one two three" }] });
  let text = "";
  stream.on("text", (delta) => { text += delta; });
  const final = await stream.finalMessage();
  out.stream = { text, final: final.content[final.content.length - 1].text, stop: final.stop_reason };

  const toolStream = client.messages.stream({ model, max_tokens: 2048, tools,
    messages: [{ role: "user", content: "Weather and time in Paris?" }] });
  const pieces = {};
  for await (const event of toolStream) {
    if (event.type === "content_block_delta" && event.delta.type === "input_json_delta") {
      pieces[event.index] = (pieces[event.index] || "") + event.delta.partial_json;
    }
  }
  const toolFinal = await toolStream.finalMessage();
  out.tools = {
    stop: toolFinal.stop_reason,
    uses: toolFinal.content.filter((b) => b.type === "tool_use").map((b) => ({ id: b.id, name: b.name, input: b.input })),
    joined: Object.keys(pieces).map((i) => JSON.parse(pieces[i])),
  };
  const counted = await client.messages.countTokens({ model, messages: [{ role: "user", content: "count these words please" }] });
  out.count = counted.input_tokens;
  return out;
}

async function main() {
  const client = new Anthropic({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY, maxRetries: 0 });
  const result = { models: {} };
  for (const model of process.env.MODELS.split(",")) {
    result.models[model] = await forModel(client, model);
  }
  const hello = [{ role: "user", content: "hi" }];
  const wrongKey = new Anthropic({ baseURL: process.env.BASE_URL, apiKey: "sk-wrong", maxRetries: 0 });
  result.errors = {
    auth: await errorName(wrongKey.messages.create({ model: "gpt-5-mini", max_tokens: 10, messages: hello })),
    notFound: await errorName(client.messages.create({ model: "claude-nonexistent-9", max_tokens: 10, messages: hello })),
    rateLimit: await errorName(client.messages.create({ model: "anthropic/fail-429", max_tokens: 10, messages: hello })),
  };
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((err) => { console.error(err); process.exit(1); });
