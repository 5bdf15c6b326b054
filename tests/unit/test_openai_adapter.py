from __future__ import annotations

import asyncio

import orjson

from llmproxy.config import ProviderSettings, Secret
from llmproxy.errors import UpstreamAuthError, UpstreamRateLimited, UpstreamRejected, UpstreamUnavailable
from llmproxy.providers import openai
from llmproxy.providers.base import StreamState
from llmproxy.registry import ModelEntry

MODEL = ModelEntry(id="gpt-4o-mini", provider="openai", provider_model="gpt-4o-mini-2024-07-18")
CREDS = ProviderSettings(name="openai", kind="openai", base_url="http://up/v1", api_key=Secret("sk-x"))


def test_build_request_swaps_model_keeps_unknown_fields_and_asks_for_usage() -> None:
    req = {"model": "gpt-4o-mini", "messages": [], "foo": 1, "stream": True, "stream_options": {"x": 1}}
    up = openai.build_request(req, MODEL, CREDS, stream=True)
    body = orjson.loads(up.body)
    assert up.url == "http://up/v1/chat/completions"
    assert up.headers["authorization"] == "Bearer sk-x"
    assert body["model"] == "gpt-4o-mini-2024-07-18" and body["foo"] == 1
    assert body["stream_options"] == {"x": 1, "include_usage": True}
    assert req["model"] == "gpt-4o-mini" and "include_usage" not in req["stream_options"]


def test_the_clients_bytes_go_upstream_untouched_when_nothing_changes() -> None:
    same = ModelEntry(id="gpt-4o-mini", provider="openai", provider_model="gpt-4o-mini")
    raw = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 1.0e0}'
    req = orjson.loads(raw)
    assert openai.build_request(req, same, CREDS, stream=False, raw=raw).body is raw
    # a stream that already asks for usage needs no change either
    raw_stream = b'{"model":"gpt-4o-mini","messages":[],"stream":true,"stream_options":{"include_usage":true}}'
    assert openai.build_request(orjson.loads(raw_stream), same, CREDS, stream=True, raw=raw_stream).body is raw_stream
    # a renamed model, or a stream that must be asked for usage, is rewritten
    assert (
        orjson.loads(openai.build_request(req, MODEL, CREDS, stream=False, raw=raw).body)["model"]
        == MODEL.provider_model
    )
    plain_stream = b'{"model":"gpt-4o-mini","messages":[],"stream":true}'
    rewritten = orjson.loads(
        openai.build_request(orjson.loads(plain_stream), same, CREDS, stream=True, raw=plain_stream).body
    )
    assert rewritten["stream_options"] == {"include_usage": True}


def _relay(chunks: list[bytes], include_usage: bool) -> tuple[bytes, StreamState]:
    state = StreamState(include_usage=include_usage)

    async def source():
        for c in chunks:
            yield c

    async def run() -> bytes:
        return b"".join([piece async for piece in openai.relay_stream(source(), MODEL, state)])

    return asyncio.run(run()), state


STREAM = (
    b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":null}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
    b"data: [DONE]\n\n"
)


def test_relay_drops_usage_chunk_the_client_did_not_ask_for() -> None:
    out, state = _relay([STREAM[:30], STREAM[30:101], STREAM[101:]], include_usage=False)
    assert b'"choices":[]' not in out and out.endswith(b"data: [DONE]\n\n")
    assert state.usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    assert state.finish_reason == "length" and state.completed


def test_relay_keeps_usage_chunk_when_asked() -> None:
    out, state = _relay([STREAM], include_usage=True)
    assert out == STREAM


def test_relay_without_done_ends_with_error_event() -> None:
    out, state = _relay([STREAM[:101]], include_usage=False)
    assert not state.completed
    last = out.strip().split(b"\n\n")[-1]
    assert orjson.loads(last[6:])["error"]["type"] == "api_error"


def test_map_error_statuses() -> None:
    body = orjson.dumps({"error": {"message": "bad thing", "type": "x", "param": "temperature", "code": "c"}})
    assert isinstance(openai.map_error(401, body, {}), UpstreamAuthError)
    limited = openai.map_error(429, body, {"retry-after": "7"})
    assert isinstance(limited, UpstreamRateLimited) and limited.headers == {"retry-after": "7"}
    assert isinstance(openai.map_error(500, b"not json", {}), UpstreamUnavailable)
    rejected = openai.map_error(400, body, {}, provider="groq")
    assert isinstance(rejected, UpstreamRejected) and not rejected.retryable
    assert rejected.param == "temperature" and "groq" in rejected.message and "bad thing" in rejected.message
