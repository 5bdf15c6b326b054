"""Anthropic Messages API <-> OpenAI chat completions.

Requests: system/developer messages become the top-level `system`; tool results become
tool_result blocks in user turns; same-role turns are merged; reasoning_effort becomes `thinking`
(budget form before Claude 4.6, adaptive form + output_config.effort from 4.6 on). Responses and
streams come back as OpenAI completions and chunks. What Anthropic cannot honour is dropped with
a debug log (seed, penalties, logprobs) or refused with a 400 (n > 1). The choices are listed in
docs/providers.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from ..config import ProviderSettings
from ..context import ChatChunk, ChatCompletion, ChatRequest
from ..errors import GatewayError, InvalidRequest, UpstreamError, from_upstream_status
from ..registry import ModelEntry
from . import chat
from .anthropic_messages import JSON_TOOL, convert_messages
from .base import StreamState, UpstreamRequest, translated
from .retry_after import retry_after
from .sse import SSEEvent

NAME = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"  # host only, as the official SDK takes it
API_VERSION = "2023-06-01"
RELAYS_ANSWER = False  # the answer is translated

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
        "user",
        "safety_identifier",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "n",
    }
)
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Thinking budgets for the models that still take `budget_tokens` (must be >= 1024 and < max_tokens,
# ThinkingConfigEnabledParam in the anthropic SDK).
_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000}
_MIN_BUDGET = 1024
# The error `type` of an Anthropic error body -> the HTTP status it comes with (API errors reference).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def build_request(
    req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
) -> UpstreamRequest:  # raw: unused, the body is always translated
    body = build_body(req, model)
    if stream:
        body["stream"] = True
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "anthropic-version": API_VERSION,
    }
    if creds.api_key is not None:
        headers["x-api-key"] = creds.api_key.value
    if creds.headers:
        headers.update(creds.headers)
    return UpstreamRequest(creds.base_url + "/v1/messages", headers, orjson.dumps(body))


def build_body(req: ChatRequest, model: ModelEntry) -> dict[str, Any]:
    """The Messages API body for an OpenAI request (without `stream`)."""
    if chat.choice_count(req) > 1:
        raise InvalidRequest(
            "n > 1 is not supported by Anthropic models; send n separate requests "
            "or pick a model that supports several choices",
            param="n",
        )
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list", param="messages")
    system, turns = convert_messages(messages)
    body: dict[str, Any] = {"model": model.provider_model, "messages": turns}
    if system:
        body["system"] = system
    requested = chat.requested_max_tokens(req)
    body["max_tokens"] = requested or model.max_output_tokens or chat.SAFE_MAX_TOKENS
    version = model_version(model.provider_model)
    dropped = [k for k in req if k not in _HANDLED and req[k] is not None]

    stop = chat.stop_list(req)
    if stop:
        body["stop_sequences"] = stop
    user = req.get("user") or req.get("safety_identifier")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}

    forced_tool = _tools(req, model, body)
    thinking = _thinking(req, model, version, body["max_tokens"], forced_tool, messages)
    if thinking is not None:
        body["thinking"], effort = thinking
        if effort:
            body.setdefault("output_config", {})["effort"] = effort

    # Sampling: gone from Claude Opus 4.7 on (the API answers 400 "`temperature` is deprecated for
    # this model"), refused as a pair on Claude 4.x ("temperature and top_p cannot both be specified"),
    # and incompatible with thinking. Dropped rather than sent to fail.
    temperature, top_p = req.get("temperature"), req.get("top_p")
    if temperature is not None or top_p is not None:
        if version >= (4, 7) or body.get("thinking", {}).get("type") in ("enabled", "adaptive"):
            dropped += [k for k in ("temperature", "top_p") if req.get(k) is not None]
        elif temperature is not None:
            body["temperature"] = min(float(temperature), 1.0)  # Anthropic's range is 0..1, OpenAI's 0..2
            if top_p is not None:
                dropped.append("top_p")
        else:
            body["top_p"] = top_p
    chat.drop(NAME, dropped)
    return body


def model_version(provider_model: str) -> tuple[int, int]:
    """(major, minor) from ids like claude-sonnet-4-5-20250929, claude-3-7-sonnet-20250219,
    claude-opus-5. A name without a version counts as the newest generation."""
    numbers = [int(t) for t in provider_model.replace(".", "-").split("-") if t.isdigit() and len(t) < 8]
    if not numbers:
        return (99, 0)
    return (numbers[0], numbers[1] if len(numbers) > 1 else 0)


def _tools(req: ChatRequest, model: ModelEntry, body: dict[str, Any]) -> bool:
    """Fill tools / tool_choice / output_config.format; True when a tool use is forced (which
    Anthropic does not allow together with thinking)."""
    fns = chat.functions(req)
    choice, named = chat.tool_choice(req)
    tools = []
    for fn in fns:
        if fn["name"] == JSON_TOOL:
            raise InvalidRequest(f"the tool name {JSON_TOOL!r} is reserved by the gateway", param="tools")
        input_schema = dict(fn.get("parameters") or {"type": "object", "properties": {}})
        input_schema.setdefault("type", "object")
        tool: dict[str, Any] = {"name": fn["name"], "input_schema": input_schema}
        if fn.get("description"):
            tool["description"] = fn["description"]
        if fn.get("strict") and model.capabilities.json_schema:
            tool["strict"] = True
        tools.append(tool)
    if named and named not in {t["name"] for t in tools}:
        raise InvalidRequest(f"tool_choice names {named!r}, which is not in tools", param="tool_choice")

    kind, schema, _ = chat.response_format(req)
    json_tool = False
    if kind == "json_schema" and model.capabilities.json_schema:
        # Structured outputs: output_config.format (anthropic SDK OutputConfigParam / JSONOutputFormatParam).
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif kind != "text":
        # Fallback for json_object, and json_schema on models without structured outputs: a tool whose
        # input schema is the wanted schema; its input comes back as the message content.
        if schema is not None and schema.get("type", "object") != "object":
            raise InvalidRequest(
                "this Anthropic model can only produce JSON objects; wrap the schema in an object",
                param="response_format.json_schema.schema",
            )
        tools.append(
            {
                "name": JSON_TOOL,
                "description": "Respond with the final answer as a JSON object.",
                "input_schema": dict(schema or {"type": "object"}),
            }
        )
        json_tool = True

    if not tools:
        return False
    body["tools"] = tools
    tool_choice: dict[str, Any]
    if json_tool and not fns:
        tool_choice = {"type": "tool", "name": JSON_TOOL}
    elif choice == "none":
        tool_choice = {"type": "none"}
    elif choice == "required":
        tool_choice = {"type": "any"}
    elif choice == "named":
        tool_choice = {"type": "tool", "name": named}
    else:
        tool_choice = {"type": "auto"}
    if req.get("parallel_tool_calls") is False and tool_choice["type"] != "none":
        tool_choice["disable_parallel_tool_use"] = True
    if tool_choice != {"type": "auto"}:
        body["tool_choice"] = tool_choice
    return tool_choice["type"] in ("any", "tool")


def _thinking(
    req: ChatRequest,
    model: ModelEntry,
    version: tuple[int, int],
    max_tokens: int,
    forced_tool: bool,
    messages: list[dict[str, Any]],
) -> tuple[dict[str, Any], str | None] | None:
    effort = chat.reasoning_effort(req)
    if effort is None:
        return None
    if not model.capabilities.reasoning:
        chat.drop(NAME, ["reasoning_effort"], f"{model.id} does not reason")
        return None
    adaptive = version >= (4, 6)  # adaptive thinking from Claude 4.6; the budget form is refused from 4.7 on
    if effort == "none":
        return ({"type": "disabled"}, None) if adaptive else None
    if forced_tool:
        chat.drop(NAME, ["reasoning_effort"], "Anthropic does not allow thinking with a forced tool choice")
        return None
    if _open_tool_loop(messages):
        # An assistant turn that called tools must be sent back starting with its thinking block;
        # an OpenAI history without `thinking_blocks` cannot do that, so this turn runs without thinking.
        chat.drop(NAME, ["reasoning_effort"], "tool results follow a turn whose thinking blocks were not sent back")
        return None
    if adaptive:
        level = {"minimal": "low", "xhigh": "xhigh" if version >= (4, 7) else "high"}.get(effort, effort)
        return {"type": "adaptive"}, level
    budget = _BUDGETS[effort]
    if budget >= max_tokens:
        budget = max(max_tokens // 2, _MIN_BUDGET)  # keep half of max_tokens for the answer
    if budget >= max_tokens:
        chat.drop(NAME, ["reasoning_effort"], f"max_tokens {max_tokens} leaves no room for a thinking budget")
        return None
    return {"type": "enabled", "budget_tokens": budget}, None


def _open_tool_loop(messages: list[dict[str, Any]]) -> bool:
    for msg in reversed(messages):
        if msg.get("role") == "assistant":
            return bool(msg.get("tool_calls")) and not msg.get("thinking_blocks")
        if msg.get("role") == "user":
            return False
    return False


def finish_reason(stop_reason: str | None, json_tool: bool = False) -> str | None:
    if stop_reason is None:
        return None
    if json_tool and stop_reason == "tool_use":
        return "stop"
    return _FINISH.get(stop_reason, "stop")


def usage(raw: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI usage from Anthropic's: Anthropic's input_tokens excludes cache reads and writes, so the
    prompt is the sum of the three; thinking is part of output_tokens, as reasoning is in OpenAI's."""
    cached = int(raw.get("cache_read_input_tokens") or 0)
    writes = int(raw.get("cache_creation_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + cached + writes
    details = raw.get("output_tokens_details") or {}
    out = chat.usage(
        prompt, int(raw.get("output_tokens") or 0), cached=cached, reasoning=int(details.get("thinking_tokens") or 0)
    )
    if writes:  # priced apart (above the input price), so the cost needs them
        out["prompt_tokens_details"]["cache_creation_tokens"] = writes
    return out


def parse_response(body: bytes, model: ModelEntry) -> ChatCompletion:
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{model.provider} sent a response that is not JSON") from None
    if not isinstance(msg, dict):
        raise UpstreamError(f"{model.provider} sent a response that is not an object")
    if msg.get("type") == "error":
        raise error_from_body(msg, model.provider)
    if not isinstance(msg.get("content"), list):
        raise UpstreamError(f"{model.provider} sent a message without content")
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    json_tool = False
    for block in msg["content"]:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:
            texts.append(orjson.dumps(block.get("input") or {}).decode())
            json_tool = True
        elif kind == "tool_use":
            calls.append(chat.tool_call(block["id"], block["name"], orjson.dumps(block.get("input") or {}).decode()))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            thinking_blocks.append(block)
        elif kind == "redacted_thinking":
            thinking_blocks.append(block)
    text = "".join(texts) if texts or not calls else None
    extra = {"thinking_blocks": thinking_blocks} if thinking_blocks else None
    choice = chat.message_choice(
        0, text, calls, finish_reason(msg.get("stop_reason"), json_tool), "".join(reasoning) or None, extra
    )
    return chat.completion(
        str(msg.get("id") or chat.new_id("chatcmpl-")),
        msg.get("model") or model.provider_model,
        [choice],
        usage(msg.get("usage") or {}),
    )


async def translate_stream(
    events: AsyncIterator[SSEEvent], model: ModelEntry, state: StreamState
) -> AsyncIterator[ChatChunk]:
    """Anthropic stream events -> OpenAI chunks. Input tokens arrive in message_start and output
    tokens (cumulative) in message_delta; the usage is complete at message_stop."""
    id_, name, created = chat.new_id("chatcmpl-"), model.provider_model, chat.now()
    raw_usage: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    tools = 0
    stop_reason: str | None = None
    json_tool = False
    async for event in events:
        if not event.data:
            continue
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{model.provider} sent a stream event that is not JSON") from None
        kind = data.get("type") or event.event
        if kind == "content_block_delta":
            block = blocks.get(data.get("index", 0)) or {"kind": "other"}
            delta = data.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                yield chat.chunk(id_, name, created, {"content": delta["text"]})
            elif dtype == "input_json_delta" and delta.get("partial_json"):
                if block["kind"] == "json":
                    yield chat.chunk(id_, name, created, {"content": delta["partial_json"]})
                elif block["kind"] == "tool":
                    block["sent"] = True
                    yield chat.chunk(
                        id_,
                        name,
                        created,
                        {"tool_calls": [{"index": block["index"], "function": {"arguments": delta["partial_json"]}}]},
                    )
            elif dtype == "thinking_delta" and delta.get("thinking"):
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
                yield chat.chunk(id_, name, created, {"reasoning_content": delta["thinking"]})
            elif dtype == "signature_delta":
                block["signature"] = block.get("signature", "") + str(delta.get("signature") or "")
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            btype = block.get("type")
            index = data.get("index", 0)
            if btype == "tool_use" and block.get("name") == JSON_TOOL:
                blocks[index] = {"kind": "json"}
                json_tool = True
            elif btype == "tool_use":
                blocks[index] = {"kind": "tool", "index": tools, "sent": False}
                yield chat.chunk(
                    id_,
                    name,
                    created,
                    {
                        "tool_calls": [
                            {
                                "index": tools,
                                "id": block.get("id") or chat.new_id("toolu_"),
                                "type": "function",
                                "function": {"name": block.get("name", ""), "arguments": ""},
                            }
                        ]
                    },
                )
                tools += 1
            elif btype == "text":
                blocks[index] = {"kind": "text"}
                if block.get("text"):
                    yield chat.chunk(id_, name, created, {"content": block["text"]})
            elif btype == "thinking":
                blocks[index] = {"kind": "thinking", "thinking": block.get("thinking", ""), "signature": ""}
            elif btype == "redacted_thinking":
                blocks[index] = {"kind": "redacted", "data": block.get("data", "")}
            else:
                blocks[index] = {"kind": "other"}  # server tools: not part of the OpenAI format
        elif kind == "content_block_stop":
            block = blocks.get(data.get("index", 0)) or {"kind": "other"}
            if block["kind"] == "tool" and not block["sent"]:
                # A call without arguments streams no input_json_delta: its arguments are "{}".
                yield chat.chunk(
                    id_, name, created, {"tool_calls": [{"index": block["index"], "function": {"arguments": "{}"}}]}
                )
            elif block["kind"] == "thinking":
                yield chat.chunk(
                    id_,
                    name,
                    created,
                    {
                        "thinking_blocks": [
                            {"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]}
                        ]
                    },
                )
            elif block["kind"] == "redacted":
                yield chat.chunk(
                    id_, name, created, {"thinking_blocks": [{"type": "redacted_thinking", "data": block["data"]}]}
                )
        elif kind == "message_start":
            msg = data.get("message") or {}
            id_ = str(msg.get("id") or id_)
            name = msg.get("model") or name
            raw_usage.update({k: v for k, v in (msg.get("usage") or {}).items() if v is not None})
            yield chat.chunk(id_, name, created, {"role": "assistant", "content": ""})
        elif kind == "message_delta":
            stop_reason = (data.get("delta") or {}).get("stop_reason") or stop_reason
            raw_usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            state.completed = True
            state.finish_reason = finish_reason(stop_reason, json_tool) or "stop"
            state.usage = usage(raw_usage)
            yield chat.chunk(id_, name, created, {}, finish=state.finish_reason)
            if state.include_usage:
                yield chat.usage_chunk(id_, name, created, state.usage)
        elif kind == "error":
            raise error_from_body(data, model.provider)
        # ping and unknown event types are ignored, as the API versioning policy asks of clients


relay_stream = translated(translate_stream)


def error_from_body(
    payload: Mapping[str, Any], provider: str, status: int | None = None, headers: Mapping[str, str] | None = None
) -> GatewayError:
    raw = payload.get("error")
    err: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    etype = str(err.get("type") or "api_error")
    message = str(err.get("message") or etype)
    status = status or ERROR_STATUS.get(etype, 500)
    return from_upstream_status(
        provider, status, message, retry_after=retry_after(headers or {}), code=etype if status != 429 else None
    )


def map_error(status: int, body: bytes, headers: Mapping[str, str], *, provider: str = NAME) -> GatewayError:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        return from_upstream_status(provider, status, f"HTTP {status}", retry_after=retry_after(headers))
    return error_from_body(payload, provider, status, headers)
