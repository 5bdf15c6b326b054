"""A request in the shape a coding agent sends (system prompt in blocks with cache_control, 17 tools
with nested schemas, thinking on, a history of parallel tool calls and their results), replayed
streamed through the Messages door to a Claude, an OpenAI and a Gemini model: every tool call of the
history reaches the provider intact, and every call of the answer reaches the client whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.doors.conftest import CLAUDE, GEMINI, GPT, MASTER, MODELS
from tests.fakes import anthropic_server, gemini_server, openai_server

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "doors" / "coding_agent.request.json"


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        if block.strip():
            lines = dict(line.split(b": ", 1) for line in block.split(b"\n"))
            out.append((lines[b"event"].decode(), orjson.loads(lines[b"data"])))
    return out


def _history_calls(body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (b["id"], b["name"], b["input"])
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_use"
    ]


def _answer_calls(model: str, sent: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls the fake upstream made for what it received: the arguments to expect."""
    if model == CLAUDE:
        return [(b["name"], b["input"]) for b in anthropic_server.answer(sent)["content"] if b["type"] == "tool_use"]
    if model == GPT:
        return [
            (c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in openai_server._tool_calls(sent)
        ]
    parts = gemini_server.answer(sent, GEMINI)["candidates"][0]["content"]["parts"]
    return [(p["functionCall"]["name"], p["functionCall"]["args"]) for p in parts if "functionCall" in p]


@pytest.mark.parametrize("model", MODELS)
def test_coding_agent_request_replayed_streamed(
    gateway_url: str, model: str, upstreams: dict[str, Any], openai_upstream: Any
) -> None:
    body = orjson.loads(FIXTURE.read_bytes())
    body["model"] = model
    assert len(body["tools"]) >= 15 and body["thinking"]["type"] == "enabled"
    raw = orjson.dumps(body)
    with httpx.stream(
        "POST",
        gateway_url + "/v1/messages",
        content=raw,
        timeout=20,
        headers={
            "x-api-key": MASTER,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
            "anthropic-beta": "interleaved-thinking-2025-05-14",
        },
    ) as r:
        assert r.status_code == 200, r.read()
        events = _events(r.read())

    history = _history_calls(body)
    if model == CLAUDE:
        state = upstreams["anthropic"][1]
        assert state.rejected == [] and orjson.dumps(state.requests[-1]) == raw  # the client's bytes
        sent = state.requests[-1]
    elif model == GPT:
        sent = openai_upstream[1].requests[-1]
        calls = [
            (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
            for m in sent["messages"]
            for c in m.get("tool_calls") or ()
        ]
        assert calls == history
        results = [m["tool_call_id"] for m in sent["messages"] if m["role"] == "tool"]
        assert results == [h[0] for h in history]
        assert len(sent["tools"]) == len(body["tools"]) and sent["reasoning_effort"] == "medium"
    else:
        state = upstreams["gemini"][1]
        assert state.rejected == []
        sent = state.requests[-1]
        calls = [
            (p["functionCall"]["name"], p["functionCall"]["args"])
            for c in sent["contents"]
            for p in c["parts"]
            if "functionCall" in p
        ]
        assert calls == [(h[1], h[2]) for h in history]
        assert len(sent["tools"][0]["functionDeclarations"]) == len(body["tools"])

    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "error" not in names
    uses: dict[int, dict[str, Any]] = {}
    pieces: dict[int, list[str]] = {}
    for name, data in events:
        if name == "content_block_start" and data["content_block"]["type"] == "tool_use":
            uses[data["index"]] = data["content_block"]
        elif name == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            pieces.setdefault(data["index"], []).append(data["delta"]["partial_json"])
    got = [(uses[i]["name"], orjson.loads("".join(pieces.get(i, [])) or "{}")) for i in sorted(uses)]
    assert got == _answer_calls(model, sent) and len(got) == 2
    assert all(u["id"] for u in uses.values())
    stop = next(d for n, d in events if n == "message_delta")
    assert stop["delta"]["stop_reason"] == "tool_use" and stop["usage"]["output_tokens"] > 0
