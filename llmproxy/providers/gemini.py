"""Gemini API (generateContent, streamGenerateContent) <-> OpenAI chat completions.

Requests: system/developer messages become `systemInstruction`, tools `functionDeclarations` with
their JSON schemas cut down to what Gemini accepts (gemini_schema.py), response_format
`responseMimeType` + `responseSchema`, n `candidateCount`, reasoning_effort `thinkingConfig`
(thinkingLevel from Gemini 3, thinkingBudget before). A functionCall's `thoughtSignature` travels
in the OpenAI tool call id (toolids.py) and is put back on the next request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from ..config import ProviderSettings
from ..context import ChatChunk, ChatCompletion, ChatRequest
from ..errors import GatewayError, InvalidRequest, UpstreamError, from_upstream_status
from ..registry import ModelEntry
from . import chat
from .base import StreamState, UpstreamRequest, translated
from .retry_after import duration_s, retry_after
from .gemini_contents import convert_messages
from .gemini_schema import gemini_schema
from .sse import SSEEvent
from .toolids import new_call_id

NAME = "gemini"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"  # host only; the path carries v1beta
RELAYS_ANSWER = False  # the answer is translated
API_VERSION = "v1beta"

_HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "n",
        "tools",
        "tool_choice",
        "response_format",
        "reasoning_effort",
    }
)
_FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"})
# thinkingBudget ranges (Gemini thinking docs): 2.5 Pro 128..32768 and cannot be turned off;
# 2.5 Flash 0..24576; 2.5 Flash-Lite 512..24576 or 0.
_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
# The gRPC status names Gemini puts in error.status -> the HTTP status they travel with.
_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def build_request(
    req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
) -> UpstreamRequest:  # raw: unused, the body is always translated
    name = quote(model.provider_model.removeprefix("models/"), safe="")  # one path segment, whatever a client sent
    url = f"{creds.base_url}/{API_VERSION}/models/{name}:" + (
        "streamGenerateContent?alt=sse" if stream else "generateContent"
    )
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    if creds.api_key is not None:
        headers["x-goog-api-key"] = creds.api_key.value
    if creds.headers:
        headers.update(creds.headers)
    return UpstreamRequest(url, headers, orjson.dumps(build_body(req, model)))


def model_version(provider_model: str) -> tuple[int, int]:
    """(major, minor) from gemini-2.5-flash, gemini-3-pro-preview, gemini-3.1-pro...; a name without
    a version (gemini-flash-latest) counts as the newest generation."""
    for token in provider_model.removeprefix("models/").split("-"):
        major, _, minor = token.partition(".")
        if major.isdigit():
            return int(major), int(minor) if minor.isdigit() else 0
    return (99, 0)


def build_body(req: ChatRequest, model: ModelEntry) -> dict[str, Any]:
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list", param="messages")
    version = model_version(model.provider_model)
    system, contents = convert_messages(messages, needs_signatures=version >= (3, 0))
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = system
    config: dict[str, Any] = {}
    max_tokens = chat.requested_max_tokens(req)
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed")):
        if req.get(ours) is not None:
            config[theirs] = req[ours]
    stop = chat.stop_list(req)
    if stop:
        config["stopSequences"] = stop
    n = chat.choice_count(req)
    if n > 1:
        config["candidateCount"] = n
    kind, schema, _ = chat.response_format(req)
    if kind != "text":
        config["responseMimeType"] = "application/json"
        if schema is not None:
            config["responseSchema"] = gemini_schema(schema, param="response_format.json_schema.schema")
    thinking = _thinking(req, model, version)
    if thinking:
        config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    _tools(req, body)
    chat.drop(NAME, [k for k in req if k not in _HANDLED and req[k] is not None])
    return body


def _tools(req: ChatRequest, body: dict[str, Any]) -> None:
    fns = chat.functions(req)
    choice, named = chat.tool_choice(req)
    if not fns:
        return
    declarations = []
    for i, fn in enumerate(fns):
        decl: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        params = fn.get("parameters")
        if params and params.get("properties"):
            # An OBJECT without properties is refused; a function without parameters simply omits them.
            decl["parameters"] = gemini_schema(params, param=f"tools[{i}].function.parameters")
        declarations.append(decl)
    body["tools"] = [{"functionDeclarations": declarations}]
    if named and named not in {d["name"] for d in declarations}:
        raise InvalidRequest(f"tool_choice names {named!r}, which is not in tools", param="tool_choice")
    mode = {"auto": "AUTO", "none": "NONE", "required": "ANY", "named": "ANY"}[choice]
    if mode != "AUTO":
        calling: dict[str, Any] = {"mode": mode}
        if named:
            calling["allowedFunctionNames"] = [named]
        body["toolConfig"] = {"functionCallingConfig": calling}


def _thinking(req: ChatRequest, model: ModelEntry, version: tuple[int, int]) -> dict[str, Any] | None:
    effort = chat.reasoning_effort(req)
    if effort is None:
        return None
    if not model.capabilities.reasoning:
        chat.drop(NAME, ["reasoning_effort"], f"{model.id} does not reason")
        return None
    name = model.provider_model.lower()
    pro = "pro" in name
    if version >= (3, 0):
        # thinkingLevel (ThinkingLevel enum in google-genai: MINIMAL, LOW, MEDIUM, HIGH); Gemini 3 Pro takes
        # LOW and HIGH only, and no Gemini 3 model turns thinking off.
        if pro:
            level = "LOW" if effort in ("none", "minimal", "low") else "HIGH"
        else:
            level = {"none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM"}.get(effort, "HIGH")
        config: dict[str, Any] = {"thinkingLevel": level}
    else:
        budget = _BUDGETS[effort]
        if pro:
            budget = min(max(budget, 128), 32768)
        else:
            budget = min(budget, 24576)
            if "lite" in name and 0 < budget < 512:
                budget = 512
        config = {"thinkingBudget": budget}
    if effort != "none":
        config["includeThoughts"] = True  # thought summaries come back as reasoning_content
    return config


def finish_reason(reason: str | None, has_calls: bool) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if has_calls else "stop"


def usage(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Gemini's total is prompt + toolUsePrompt + candidates + thoughts; OpenAI counts tool-use prompts
    as prompt and reasoning inside completion_tokens. cachedContentTokenCount is part of the prompt."""
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    return chat.usage(prompt, completion, cached=int(meta.get("cachedContentTokenCount") or 0), reasoning=thoughts)


def _parts(candidate: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def parse_response(body: bytes, model: ModelEntry) -> ChatCompletion:
    try:
        resp = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{model.provider} sent a response that is not JSON") from None
    if not isinstance(resp, dict):
        raise UpstreamError(f"{model.provider} sent a response that is not an object")
    if isinstance(resp.get("error"), dict):
        raise error_from_body(resp, model.provider)
    choices = []
    for i, cand in enumerate(resp.get("candidates") or ()):
        texts, thoughts, calls = [], [], []
        for part in _parts(cand):
            if "functionCall" in part:
                call = part["functionCall"]
                calls.append(
                    chat.tool_call(
                        new_call_id(part.get("thoughtSignature")),
                        str(call.get("name", "")),
                        orjson.dumps(call.get("args") or {}).decode(),
                    )
                )
            elif part.get("thought") and "text" in part:
                thoughts.append(part["text"])
            elif "text" in part:
                texts.append(part["text"])
        text = "".join(texts) if texts or not calls else None
        choices.append(
            chat.message_choice(
                int(cand.get("index", i)),
                text,
                calls,
                finish_reason(cand.get("finishReason"), bool(calls)) or "stop",
                "".join(thoughts) or None,
            )
        )
    if not choices:
        # The prompt itself was blocked (promptFeedback.blockReason): no candidate at all.
        blocked = (resp.get("promptFeedback") or {}).get("blockReason")
        choices.append(chat.message_choice(0, "", [], "content_filter" if blocked else "stop"))
    return chat.completion(
        str(resp.get("responseId") or chat.new_id("chatcmpl-")),
        resp.get("modelVersion") or model.provider_model,
        choices,
        usage(resp.get("usageMetadata") or {}),
    )


async def translate_stream(
    events: AsyncIterator[SSEEvent], model: ModelEntry, state: StreamState
) -> AsyncIterator[ChatChunk]:
    """Each SSE event is a whole GenerateContentResponse; the stream ends when the connection closes,
    so it is complete once every candidate that spoke has a finishReason. usageMetadata is
    cumulative: the last one wins."""
    id_, name, created = chat.new_id("chatcmpl-"), model.provider_model, chat.now()
    started: set[int] = set()
    finished: set[int] = set()
    calls: dict[int, int] = {}  # candidate index -> tool calls so far
    meta: Mapping[str, Any] = {}
    blocked = False
    async for event in events:
        if not event.data:
            continue
        try:
            resp = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{model.provider} sent a stream event that is not JSON") from None
        if isinstance(resp, list) and resp:
            resp = resp[0]
        if not isinstance(resp, dict):
            continue
        if isinstance(resp.get("error"), dict):
            raise error_from_body(resp, model.provider)
        if id_.startswith("chatcmpl-") and resp.get("responseId"):
            id_ = str(resp["responseId"])
        name = resp.get("modelVersion") or name
        meta = resp.get("usageMetadata") or meta
        candidates = resp.get("candidates") or ()
        if not candidates and (resp.get("promptFeedback") or {}).get("blockReason"):
            blocked = True
        for i, cand in enumerate(candidates):
            index = int(cand.get("index", i))
            if index not in started:
                started.add(index)
                yield chat.chunk(id_, name, created, {"role": "assistant", "content": ""}, index=index)
            for part in _parts(cand):
                if "functionCall" in part:
                    call = part["functionCall"]
                    k = calls.get(index, 0)
                    calls[index] = k + 1
                    yield chat.chunk(
                        id_,
                        name,
                        created,
                        {
                            "tool_calls": [
                                {
                                    "index": k,
                                    "id": new_call_id(part.get("thoughtSignature")),
                                    "type": "function",
                                    "function": {"name": str(call.get("name", "")), "arguments": ""},
                                }
                            ]
                        },
                        index=index,
                    )
                    yield chat.chunk(
                        id_,
                        name,
                        created,
                        {
                            "tool_calls": [
                                {"index": k, "function": {"arguments": orjson.dumps(call.get("args") or {}).decode()}}
                            ]
                        },
                        index=index,
                    )
                elif part.get("thought") and part.get("text"):
                    yield chat.chunk(id_, name, created, {"reasoning_content": part["text"]}, index=index)
                elif part.get("text"):
                    yield chat.chunk(id_, name, created, {"content": part["text"]}, index=index)
            reason = finish_reason(cand.get("finishReason"), bool(calls.get(index)))
            if reason and index not in finished:
                finished.add(index)
                state.finish_reason = reason
                yield chat.chunk(id_, name, created, {}, index=index, finish=reason)
    if blocked and not started:
        state.finish_reason = "content_filter"
        yield chat.chunk(id_, name, created, {"role": "assistant", "content": ""})
        yield chat.chunk(id_, name, created, {}, finish="content_filter")
    elif not started or started - finished:
        return  # the connection ended before Gemini finished: base.relay_translated reports it
    state.completed = True
    state.usage = usage(meta)
    if state.include_usage:
        yield chat.usage_chunk(id_, name, created, state.usage)


relay_stream = translated(translate_stream)


def error_from_body(
    payload: Mapping[str, Any], provider: str, status: int | None = None, headers: Mapping[str, str] | None = None
) -> GatewayError:
    raw = payload.get("error")
    err: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    grpc = str(err.get("status") or "")
    code = err.get("code") if isinstance(err.get("code"), int) else None
    status = status or code or _STATUS.get(grpc, 500)
    message = str(err.get("message") or grpc or f"HTTP {status}")
    if status == 400 and "API key not valid" in message:
        status = 401  # Gemini answers a wrong key with 400 INVALID_ARGUMENT; it is the gateway's credential
    return from_upstream_status(
        provider,
        status,
        message,
        retry_after=retry_after(headers or {}, _retry_delay(err)),
        code=(grpc or None) if status != 429 else None,
    )


def _retry_delay(err: Mapping[str, Any]) -> float | None:
    """The wait Gemini puts in the body of a 429: a google.rpc.RetryInfo among the error's details."""
    details = err.get("details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("@type") == "type.googleapis.com/google.rpc.RetryInfo":
            return duration_s(detail.get("retryDelay"))
    return None


def map_error(status: int, body: bytes, headers: Mapping[str, str], *, provider: str = NAME) -> GatewayError:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, list) and payload:
        payload = payload[0]  # streamGenerateContent without alt=sse wraps errors in a list
    if not isinstance(payload, dict):
        return from_upstream_status(provider, status, f"HTTP {status}", retry_after=retry_after(headers))
    return error_from_body(payload, provider, status, headers)
