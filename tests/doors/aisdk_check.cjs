// Drives the gateway's /v1/responses with the Vercel AI SDK's OpenAI provider (`openai(model)`, its
// Responses API default, not `.chat()`) and prints what it saw as one JSON line, for
// tests/doors/test_responses_aisdk.py to check.
// Environment: SDK_DIR (where ai and @ai-sdk/openai are installed), BASE_URL, API_KEY, MODELS.
"use strict";
const { createRequire } = require("node:module");
const sdkRequire = createRequire(process.env.SDK_DIR + "/");
const { generateText, streamText, jsonSchema, tool, stepCountIs } = sdkRequire("ai");
const { createOpenAI } = sdkRequire("@ai-sdk/openai");

const weather = tool({
  description: "Weather for a city",
  inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" }, days: { type: "integer" } },
                            required: ["city", "days"], additionalProperties: false }),
  execute: async ({ city, days }) => `sunny in ${city} for ${days} days`,
});

async function forModel(openai, model) {
  const out = {};
  const created = await generateText({ model: openai(model), prompt: "hello there" });
  out.create = { text: created.text, finish: created.finishReason, output: created.usage.outputTokens,
                 input: created.usage.inputTokens, id: created.response.id };

  const streamed = streamText({ model: openai(model), prompt: "one two three" });
  let text = "";
  for await (const delta of streamed.textStream) text += delta;
  out.stream = { text, finish: await streamed.finishReason, output: (await streamed.usage).outputTokens };

  const withTools = await generateText({ model: openai(model), prompt: "Weather in Paris for 3 days?",
                                         tools: { get_weather: weather }, stopWhen: stepCountIs(3) });
  out.tools = { steps: withTools.steps.length, calls: withTools.steps[0].toolCalls.map((c) => [c.toolName, c.input]),
                results: withTools.steps[0].toolResults.map((r) => r.output), text: withTools.text };
  return out;
}

async function main() {
  const openai = createOpenAI({ baseURL: process.env.BASE_URL + "/v1", apiKey: process.env.API_KEY });
  const models = {};
  for (const model of process.env.MODELS.split(",")) models[model] = await forModel(openai, model);
  console.log(JSON.stringify({ models }));
}

main().catch((err) => { console.error(err && err.stack || err); process.exit(1); });
