"""The internal answer -> an OpenAI Response object, and the Response's own pieces.

A chat completion becomes the Response an OpenAI model would have returned: the request's settings
echoed (instructions, tools, text format, sampling...), the output as items (a reasoning summary,
one assistant message with its output_text, one function_call item per tool call), the status
(`incomplete` when the output-token limit cut it) and the usage in the Responses' terms. The
stream (responses_stream.py) builds the same object piece by piece.
"""
from __future__ import annotations

import time
from typing import Any

from ..context import ChatCompletion, Usage
from ..providers import chat

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def shell(body: dict[str, Any], response_id: str, model: str) -> dict[str, Any]:
    """The Response for `body` before any output: status in_progress, the request's settings echoed."""
    reasoning = body.get("reasoning") or {}
    text = body.get("text") or {}
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": "in_progress",
        "background": False, "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None, "model": model, "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": "default", "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity", "medium")},
        "tool_choice": body.get("tool_choice", "auto"), "tools": [_tool(t) for t in body.get("tools") or ()],
        "top_logprobs": 0, "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"),
        "usage": None, "user": body.get("user"), "metadata": body.get("metadata") or {},
    }


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool
    return {"type": "function", "name": tool["name"], "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": tool.get("strict", True)}


def response(body: dict[str, Any], completion: ChatCompletion, response_id: str) -> dict[str, Any]:
    """The whole Response for an internal completion."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if msg.get("reasoning_content"):
        output.append(reasoning_item(chat.new_id("rs_"), msg["reasoning_content"]))
    calls = msg.get("tool_calls") or []
    text = msg.get("content")
    if isinstance(text, str) and (text or not calls):
        output.append(message_item(chat.new_id("msg_"), text, "completed"))
    for call in calls:
        fn = call.get("function") or {}
        output.append(call_item(chat.new_id("fc_"), str(call.get("id") or chat.new_id("call_")),
                                str(fn.get("name") or ""), str(fn.get("arguments") or ""), "completed"))
    out = shell(body, response_id, str(completion.get("model") or body["model"]))
    out["output"] = output
    finish(out, choice.get("finish_reason"), completion.get("usage"))
    return out


def finish(out: dict[str, Any], finish_reason: str | None, internal: Usage | None) -> None:
    """The end of a Response: its status from the chat finish reason, and its usage."""
    reason = INCOMPLETE.get(finish_reason or "")
    out["status"] = "incomplete" if reason else "completed"
    out["incomplete_details"] = {"reason": reason} if reason else None
    out["usage"] = usage(internal)
    if out["status"] == "incomplete":
        for item in out["output"]:
            if item.get("status") == "completed" and item["type"] == "message":
                item["status"] = "incomplete"


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [output_text(text)] if status != "in_progress" else []}


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}] if text else []}


def usage(internal: Usage | None) -> dict[str, Any]:
    """The Responses usage from the internal one."""
    internal = internal or {}
    prompt = internal.get("prompt_tokens_details") or {}
    completion = internal.get("completion_tokens_details") or {}
    inputs, outputs = int(internal.get("prompt_tokens") or 0), int(internal.get("completion_tokens") or 0)
    return {"input_tokens": inputs,
            "input_tokens_details": {"cached_tokens": int(prompt.get("cached_tokens") or 0),
                                     "cache_write_tokens": int(prompt.get("cache_creation_tokens") or 0)},
            "output_tokens": outputs,
            "output_tokens_details": {"reasoning_tokens": int(completion.get("reasoning_tokens") or 0)},
            "total_tokens": inputs + outputs}
