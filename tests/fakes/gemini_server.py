"""A fake Gemini API (v1beta generateContent / streamGenerateContent?alt=sse) that speaks the real
wire format and refuses, with 400 INVALID_ARGUMENT, what the real API refuses.

The checker is built from the field names of the REST reference (GenerateContentRequest, Content,
Part, GenerationConfig, ThinkingConfig, Tool, FunctionDeclaration, ToolConfig, Schema): an unknown
field anywhere is refused like the real API does ("Invalid JSON payload received. Unknown name").
On top: roles user/model, one data field per part, a functionResponse must answer the model turn
before it, Gemini 3 wants the thoughtSignature of the first functionCall of each model turn,
thinkingLevel only from Gemini 3 and never together with thinkingBudget, at most 5 stop sequences.

Model names pick failures: fail-<status> (429 with RetryInfo in the body, as Gemini sends it),
unavailable (503 UNAVAILABLE), cut-stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes import gemini_embed
from tests.fakes.anthropic_server import sample

API_KEY = "AIzaFakeGeminiKey0123456789"
SIGNATURE = "CiQB0e2Kb7zUvQ2yV+pc1fP4h5q0aGVsbG8vc2lnbmF0dXJlPT0="  # base64 with + / and padding, like the real ones

FIELDS: dict[str, set[str]] = {
    "request": {
        "contents",
        "tools",
        "toolConfig",
        "safetySettings",
        "systemInstruction",
        "generationConfig",
        "cachedContent",
        "model",
    },
    "content": {"parts", "role"},
    "part": {
        "text",
        "inlineData",
        "functionCall",
        "functionResponse",
        "fileData",
        "executableCode",
        "codeExecutionResult",
        "thought",
        "thoughtSignature",
        "videoMetadata",
        "partMetadata",
        "mediaResolution",
    },
    "blob": {"mimeType", "data"},
    "fileData": {"mimeType", "fileUri"},
    "functionCall": {"id", "name", "args"},
    "functionResponse": {"id", "name", "response", "parts", "willContinue", "scheduling"},
    "generationConfig": {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "imageConfig",
        "mediaResolution",
    },
    "thinkingConfig": {"includeThoughts", "thinkingBudget", "thinkingLevel"},
    "tool": {
        "functionDeclarations",
        "googleSearchRetrieval",
        "codeExecution",
        "googleSearch",
        "computerUse",
        "urlContext",
        "fileSearch",
        "googleMaps",
    },
    "functionDeclaration": {
        "name",
        "description",
        "behavior",
        "parameters",
        "parametersJsonSchema",
        "response",
        "responseJsonSchema",
    },
    "toolConfig": {"functionCallingConfig", "retrievalConfig"},
    "functionCallingConfig": {"mode", "allowedFunctionNames"},
    "schema": {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    },
}
_DATA = ("text", "inlineData", "functionCall", "functionResponse", "fileData", "executableCode", "codeExecutionResult")
_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}


class Invalid(Exception):
    pass


@dataclass
class FakeState:
    requests: list[dict[str, Any]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    embed_requests: list[dict[str, Any]] = field(default_factory=list)  # gemini_embed.py's batchEmbedContents


def error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> Response:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        err["details"] = details
    return Response(orjson.dumps({"error": err}), code, media_type="application/json")


# What Gemini puts in a 429's body instead of a Retry-After header
QUOTA_DETAILS = [
    {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaValue": "10",
            }
        ],
    },
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"},
]


def _known(obj: Any, kind: str, path: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise Invalid(f"Invalid value at '{path}', expected an object")
    for key in obj:
        if key not in FIELDS[kind]:
            raise Invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{path}': Cannot find field.")
    return obj


def _schema(node: Any, path: str) -> None:
    _known(node, "schema", path)
    kind = node.get("type")
    if kind is not None and str(kind).upper() not in _TYPES:
        raise Invalid(f"Invalid value at '{path}.type', \"{kind}\"")
    if str(kind).upper() == "ARRAY" and "items" not in node:
        raise Invalid(f"{path}.items: missing field.")
    for name, sub in (node.get("properties") or {}).items():
        _schema(sub, f"{path}.properties[{name}].value")
    if "items" in node:
        _schema(node["items"], f"{path}.items")
    for i, sub in enumerate(node.get("anyOf") or ()):
        _schema(sub, f"{path}.any_of[{i}]")
    if node.get("enum") and not all(isinstance(v, str) for v in node["enum"]):
        raise Invalid(f"Invalid value at '{path}.enum', expected strings")


def check(body: Any, model: str) -> None:
    _known(body, "request", "")
    gen3 = model.split("-")[1][:1].isdigit() and int(model.split("-")[1].split(".")[0]) >= 3
    contents = body.get("contents")
    if not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    if "systemInstruction" in body:
        _known(body["systemInstruction"], "content", "system_instruction")
    for i, content in enumerate(contents):
        _known(content, "content", f"contents[{i}]")
        if content.get("role") not in ("user", "model"):
            raise Invalid("Please use a valid role: user, model.")
        if not content.get("parts"):
            raise Invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        first_call = True
        for j, part in enumerate(content["parts"]):
            where = f"contents[{i}].parts[{j}]"
            _known(part, "part", where)
            data = [k for k in _DATA if k in part]
            if len(data) != 1:
                raise Invalid(
                    f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
                )
            if "inlineData" in part:
                _known(part["inlineData"], "blob", f"{where}.inline_data")
            if "fileData" in part:
                _known(part["fileData"], "fileData", f"{where}.file_data")
            if "functionCall" in part:
                _known(part["functionCall"], "functionCall", f"{where}.function_call")
                if content["role"] != "model":
                    raise Invalid("functionCall parts belong to model turns")
                if gen3 and first_call and not part.get("thoughtSignature"):
                    raise Invalid(
                        f"Function call is missing a thought_signature in functionCall parts. This is "
                        f"required for tools to work correctly, and missing thought_signature may lead to "
                        f"degraded model performance. Additional data, function call `default_api:"
                        f"{part['functionCall'].get('name')}` , position {j + 1}."
                    )
                first_call = False
            if "functionResponse" in part:
                _known(part["functionResponse"], "functionResponse", f"{where}.function_response")
                previous = contents[i - 1] if i else {"parts": []}
                called = {p["functionCall"]["name"] for p in previous["parts"] if "functionCall" in p}
                if part["functionResponse"].get("name") not in called:
                    raise Invalid(
                        "Please ensure that function response turn comes immediately after a function call turn."
                    )
                if not isinstance(part["functionResponse"].get("response"), dict):
                    raise Invalid(
                        f"Invalid value at '{where}.function_response.response' (type.googleapis.com/google.protobuf.Struct)"
                    )
    config = body.get("generationConfig")
    if config is not None:
        _known(config, "generationConfig", "generation_config")
        if len(config.get("stopSequences") or ()) > 5:
            raise Invalid("stop_sequences: at most 5 stop sequences are allowed")
        if "responseSchema" in config:
            if config.get("responseMimeType") != "application/json":
                raise Invalid("responseSchema requires responseMimeType application/json")
            _schema(config["responseSchema"], "generation_config.response_schema")
        thinking = config.get("thinkingConfig")
        if thinking is not None:
            _known(thinking, "thinkingConfig", "generation_config.thinking_config")
            if "thinkingLevel" in thinking and "thinkingBudget" in thinking:
                raise Invalid("You can only set only one of thinking budget and thinking level.")
            if "thinkingLevel" in thinking and not gen3:
                raise Invalid("Thinking level is not supported for this model.")
            if thinking.get("thinkingLevel") not in (None, "MINIMAL", "LOW", "MEDIUM", "HIGH"):
                raise Invalid("Invalid value at 'generation_config.thinking_config.thinking_level'")
    for t, tool in enumerate(body.get("tools") or ()):
        _known(tool, "tool", f"tools[{t}]")
        for d, decl in enumerate(tool.get("functionDeclarations") or ()):
            _known(decl, "functionDeclaration", f"tools[{t}].function_declarations[{d}]")
            params = decl.get("parameters")
            if params is not None:
                _schema(params, f"tools[{t}].function_declarations[{d}].parameters")
                if str(params.get("type")).upper() == "OBJECT" and not params.get("properties"):
                    raise Invalid(
                        f"* GenerateContentRequest.tools[{t}].function_declarations[{d}].parameters.properties: should be non-empty for OBJECT type"
                    )
    if "toolConfig" in body:
        _known(body["toolConfig"], "toolConfig", "tool_config")
        calling = _known(
            body["toolConfig"].get("functionCallingConfig", {}),
            "functionCallingConfig",
            "tool_config.function_calling_config",
        )
        if calling.get("mode") not in (None, "AUTO", "ANY", "NONE", "VALIDATED"):
            raise Invalid("Invalid value at 'tool_config.function_calling_config.mode'")
        if calling.get("allowedFunctionNames") and calling.get("mode") not in ("ANY", "VALIDATED"):
            raise Invalid("allowed_function_names may only be set when mode is ANY or VALIDATED")


def answer(body: dict[str, Any], model: str) -> dict[str, Any]:
    gen3 = not model.startswith(("gemini-1", "gemini-2"))
    last = body["contents"][-1]
    responded = any("functionResponse" in p for p in last["parts"])
    text = " ".join(p["text"] for p in last["parts"] if "text" in p)
    decls = [d for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()]
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    config = body.get("generationConfig") or {}
    candidates = []
    for index in range(config.get("candidateCount", 1)):
        parts: list[dict[str, Any]] = []
        if (config.get("thinkingConfig") or {}).get("includeThoughts"):
            parts.append({"text": "**Thinking it over**", "thought": True})
        if decls and not responded and calling.get("mode") != "NONE":
            allowed = calling.get("allowedFunctionNames")
            for k, decl in enumerate([d for d in decls if not allowed or d["name"] in allowed][:2]):
                part: dict[str, Any] = {
                    "functionCall": {"name": decl["name"], "args": sample(decl.get("parameters") or {"type": "object"})}
                }
                if gen3 and k == 0:
                    part["thoughtSignature"] = SIGNATURE
                parts.append(part)
        elif "responseSchema" in config:
            parts.append({"text": orjson.dumps(sample(config["responseSchema"])).decode()})
        elif config.get("responseMimeType") == "application/json":
            parts.append({"text": '{"answer": "ok"}'})
        else:
            parts.append({"text": f"You said: {text}" if text else "Thanks for the results."})
        candidates.append(
            {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": index, "safetyRatings": []}
        )
    thoughts = 7 if (config.get("thinkingConfig") or {}).get("includeThoughts") else None
    usage = {
        "promptTokenCount": 31,
        "candidatesTokenCount": 9,
        "totalTokenCount": 40 + (thoughts or 0),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 31}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if body.get("systemInstruction"):
        usage["cachedContentTokenCount"] = 16
    return {"candidates": candidates, "usageMetadata": usage, "modelVersion": model, "responseId": "resp-fake-gemini"}


def stream_chunks(resp: dict[str, Any], *, cut: bool = False) -> list[bytes]:
    """The SSE of streamGenerateContent?alt=sse: each event a whole response; text cut in pieces,
    functionCall parts whole; finishReason and the final usage on the last event."""
    out: list[bytes] = []
    for cand in resp["candidates"]:
        for part in cand["content"]["parts"]:
            pieces = (
                [part]
                if "text" not in part
                else [{**part, "text": part["text"][k : k + 8]} for k in range(0, len(part["text"]), 8)]
            )
            for piece in pieces:
                chunk = {
                    "candidates": [{"content": {"parts": [piece], "role": "model"}, "index": cand["index"]}],
                    "usageMetadata": {
                        "promptTokenCount": resp["usageMetadata"]["promptTokenCount"],
                        "totalTokenCount": resp["usageMetadata"]["promptTokenCount"],
                    },
                    "modelVersion": resp["modelVersion"],
                    "responseId": resp["responseId"],
                }
                out.append(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
        if cut:
            return out[:1]
    last = {
        "candidates": [
            {"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": c["index"]}
            for c in resp["candidates"]
        ],
        "usageMetadata": resp["usageMetadata"],
        "modelVersion": resp["modelVersion"],
        "responseId": resp["responseId"],
    }
    out.append(b"data: " + orjson.dumps(last) + b"\r\n\r\n")
    return out


def create_app(state: FakeState) -> Starlette:
    async def generate(request: Request) -> Response:
        target = request.path_params["target"]
        model, _, method = target.partition(":")
        if request.headers.get("x-goog-api-key") is None:
            return error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without "
                "established identity). Please use API Key or other form of API consumer identity to call this API.",
            )
        if request.headers["x-goog-api-key"] != API_KEY:
            return error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        if method == "batchEmbedContents":
            return await gemini_embed.batch_embed(request, state, model, error)
        stream = method == "streamGenerateContent"
        if method not in ("generateContent", "streamGenerateContent"):
            return error(404, "NOT_FOUND", f"Method {method} not found")
        if stream and request.query_params.get("alt") != "sse":
            return error(400, "INVALID_ARGUMENT", "this fake only streams with alt=sse")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        state.requests.append(body)
        state.urls.append(str(request.url))
        state.headers.append(dict(request.headers))
        if model.startswith("fail-") and model[5:].isdigit():
            code = int(model[5:])
            status = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
            return error(
                code, status.get(code, "UNKNOWN"), f"fake failure {code}", QUOTA_DETAILS if code == 429 else None
            )
        if model == "unavailable":
            return error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        try:
            check(body, model if model.startswith("gemini-") else "gemini-3-" + model)
        except Invalid as exc:
            state.rejected.append(str(exc))
            return error(400, "INVALID_ARGUMENT", str(exc))
        resp = answer(body, model)
        if not stream:
            return Response(orjson.dumps(resp), media_type="application/json")
        chunks = stream_chunks(resp, cut=model == "cut-stream")

        async def gen() -> AsyncIterator[bytes]:
            for piece in chunks:
                yield piece

        return StreamingResponse(gen(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1beta/models/{target:path}", generate, methods=["POST"])])
