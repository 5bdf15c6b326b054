"""The pure parts of the embeddings and legacy completions doors, on small recorded-style payloads:
splitting and joining batches, reading the usage off a relayed answer, base64 packing, the Gemini
translation, the prompt -> chat translation and the chunk rewrites."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator

import orjson
import pytest

from llmproxy.config import ProviderSettings, Secret
from llmproxy.doors import completions, embeddings
from llmproxy.errors import InvalidRequest
from llmproxy.providers import embedding_parts, gemini_embeddings
from llmproxy.providers.openai_completions import LegacyTarget, passthrough_request
from llmproxy.providers.openai_embeddings import COMPATIBLE, OPENAI, parse_response, trailing_usage
from llmproxy.registry import ModelEntry

GEMINI = ModelEntry(
    id="gemini-embedding-001", provider="gemini", provider_model="gemini-embedding-001", mode="embedding"
)
SMALL = ModelEntry(
    id="text-embedding-3-small", provider="openai", provider_model="text-embedding-3-small", mode="embedding"
)
CREDS = ProviderSettings(name="openai", kind="openai", base_url="http://upstream/v1", api_key=Secret("sk-up"))


def test_a_batch_is_split_at_the_limit_and_a_single_input_never_is() -> None:
    assert embedding_parts.split({"model": "m", "input": "one"}, 2) == [{"model": "m", "input": "one"}]
    assert embedding_parts.split({"model": "m", "input": [1, 2, 3, 4, 5]}, 2) == [
        {"model": "m", "input": [1, 2, 3, 4, 5]}
    ]
    parts = embedding_parts.split({"model": "m", "input": ["a", "b", "c", "d", "e"]}, 2)
    assert [p["input"] for p in parts] == [["a", "b"], ["c", "d"], ["e"]]


def test_joined_parts_are_renumbered_in_order_and_their_usage_summed() -> None:
    parts = [
        {
            "object": "list",
            "model": "m",
            "data": [{"object": "embedding", "index": i, "embedding": [float(n + i)]} for i in range(size)],
            "usage": {"prompt_tokens": size * 2, "total_tokens": size * 2},
        }
        for n, size in ((0, 2), (10, 1))
    ]
    joined = embedding_parts.join(parts)
    assert [(d["index"], d["embedding"]) for d in joined["data"]] == [(0, [0.0]), (1, [1.0]), (2, [10.0])]
    assert joined["usage"] == {"prompt_tokens": 6, "total_tokens": 6}


@pytest.mark.parametrize(
    "body, usage",
    [
        (
            b'{"object":"list","data":[{"embedding":[0.1]}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}',
            {"prompt_tokens": 3, "total_tokens": 3},
        ),
        (
            b'{"object": "list", "data": [], "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}\n',
            {"prompt_tokens": 1, "total_tokens": 1},
        ),
        (
            b'{"usage":{"prompt_tokens":3,"total_tokens":3},"object":"list","data":[{"embedding":[0.1]}]}',
            None,
        ),  # not last
        (b'{"data":[],"model":"usage","x":{}}', None),  # "usage" as a value, not a key
        (b'{"error":{"message":"no"}}', None),
        (b'{"data":[],"usage":{"total_tokens":3}}', None),  # no prompt_tokens
    ],
)
def test_the_usage_is_read_off_the_end_only_when_the_bytes_say_so_plainly(body: bytes, usage: object) -> None:
    assert trailing_usage(body) == usage


def test_an_answer_read_by_its_usage_keeps_its_vectors_in_the_bytes_until_needed() -> None:
    body = (
        b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5]}],"model":"m",'
        b'"usage":{"prompt_tokens":2,"total_tokens":2}}'
    )
    lazy = parse_response(body, SMALL)
    assert lazy["data"] is None and lazy["usage"]["prompt_tokens"] == 2
    whole = embedding_parts.parsed(embedding_parts.UpstreamResult(lazy, 200, 0.0, body))
    assert whole["data"][0]["embedding"] == [0.5]
    no_usage = parse_response(b'{"object":"list","data":[{"embedding":[1.0]}]}', SMALL)
    assert no_usage["usage"] == {"prompt_tokens": 0, "total_tokens": 0}


def test_base64_is_little_endian_float32() -> None:
    values = [0.25, -1.5, 3.0e-5]
    packed = embeddings.pack(values)
    assert base64.b64decode(packed) == struct.pack("<3f", *values)
    assert embeddings.unpack(packed) == pytest.approx(values)
    rendered = embeddings.render({"data": [{"index": 0, "embedding": values}]}, "base64")
    assert rendered["data"][0]["embedding"] == packed


def test_openai_and_compatible_servers_get_the_clients_bytes_unless_something_must_change() -> None:
    req = {"model": "text-embedding-3-small", "input": "x", "encoding_format": "base64"}
    raw = orjson.dumps(req)
    assert OPENAI.build_request(req, SMALL, CREDS, stream=False, raw=raw).body is raw
    compat = orjson.loads(COMPATIBLE.build_request(req, SMALL, CREDS, stream=False, raw=raw).body)
    assert compat["encoding_format"] == "float"
    aliased = OPENAI.build_request({**req, "model": "alias"}, SMALL, CREDS, stream=False, raw=raw)
    assert (
        orjson.loads(aliased.body)["model"] == "text-embedding-3-small"
        and aliased.url == "http://upstream/v1/embeddings"
    )


def test_gemini_gets_one_request_per_text_and_its_cut_vectors_come_back_unit_length() -> None:
    creds = ProviderSettings(name="gemini", kind="gemini", base_url="http://g", api_key=Secret("AIza"))
    up = gemini_embeddings.build_request(
        {"model": "g", "input": ["a", "b"], "dimensions": 2}, GEMINI, creds, stream=False
    )
    assert up.url == "http://g/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert up.headers["x-goog-api-key"] == "AIza"
    assert orjson.loads(up.body) == {
        "requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}, "outputDimensionality": 2}
            for t in ("a", "b")
        ]
    }
    answer = gemini_embeddings.parse_response(b'{"embeddings":[{"values":[3.0,4.0]},{"values":[0.0,2.0]}]}', GEMINI)
    done = gemini_embeddings.finish(answer, {"input": ["abcdefgh", "b"], "dimensions": 2})
    assert [d["embedding"] for d in done["data"]] == [[0.6, 0.8], [0.0, 1.0]]
    assert done["usage"] == {"prompt_tokens": 3, "total_tokens": 3}  # estimated: 8 chars -> 2, 1 char -> 1
    with pytest.raises(InvalidRequest, match="text only"):
        gemini_embeddings.build_request({"model": "g", "input": [[1, 2]]}, GEMINI, creds, stream=False)


def test_the_prompt_becomes_one_user_message_and_legacy_only_fields_stay_only_when_they_ask() -> None:
    chat = completions.to_chat(
        {
            "model": "m",
            "prompt": "Hi",
            "max_tokens": 5,
            "temperature": 0,
            "echo": False,
            "best_of": 1,
            "logprobs": None,
            "suffix": "",
        }
    )
    assert chat == {
        "model": "m",
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0,
        "max_completion_tokens": 5,
    }
    legacy = completions.to_chat({"model": "m", "prompt": ["a", "b"], "echo": True, "logprobs": 0, "best_of": 3})
    assert {k: legacy[k] for k in ("prompt", "echo", "logprobs", "best_of")} == {
        "prompt": ["a", "b"],
        "echo": True,
        "logprobs": 0,
        "best_of": 3,
    }


def test_a_chat_target_refuses_what_only_the_legacy_api_does() -> None:
    gpt = ModelEntry(id="gpt-4o-mini", provider="openai", provider_model="gpt-4o-mini")
    instruct = ModelEntry(
        id="gpt-3.5-turbo-instruct", provider="openai", provider_model="gpt-3.5-turbo-instruct", mode="completion"
    )
    body = {"model": "gpt-4o-mini", "prompt": "x", "suffix": "!"}
    target = LegacyTarget("openai", body)
    with pytest.raises(InvalidRequest) as refused:
        target.build_request(completions.to_chat(body), gpt, CREDS, stream=False)
    assert refused.value.param == "suffix"
    sent = target.build_request(completions.to_chat(body), instruct, CREDS, stream=False)
    assert sent.url.endswith("/completions") and orjson.loads(sent.body)["suffix"] == "!"


def test_a_passthrough_stream_always_asks_for_usage() -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "x", "stream": True}
    instruct = ModelEntry(
        id="gpt-3.5-turbo-instruct", provider="openai", provider_model="gpt-3.5-turbo-instruct", mode="completion"
    )
    sent = orjson.loads(passthrough_request(body, orjson.dumps(body), instruct, CREDS, stream=True).body)
    assert sent["stream_options"] == {"include_usage": True}
    plain = orjson.dumps({**body, "stream": False})
    assert passthrough_request(orjson.loads(plain), plain, instruct, CREDS, stream=False).body is plain


def test_chat_chunks_become_text_completion_chunks() -> None:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    assert (
        completions.chunk_event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        is None
    )
    text = completions.chunk_event(
        {**base, "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    )
    assert text == {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"text": "Hi", "index": 0, "logprobs": None, "finish_reason": None}],
    }
    usage = completions.chunk_event({**base, "choices": [], "usage": {"prompt_tokens": 1}})
    assert usage is not None and usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 1}


async def test_the_relay_rewrites_chat_events_and_keeps_legacy_ones_errors_and_done() -> None:
    chat = (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"A"},"finish_reason":null}]}\n\n'
    )
    legacy = b'data: {"id":"cmpl-2","object":"text_completion","choices":[{"text":"B","index":0}]}\n\n'
    error = b'data: {"error":{"message":"x"}}\n\n'

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (chat + legacy, error, b"data: [DONE]\n\n"):
            yield piece

    out = b"".join([p async for p in completions.relay(pieces())])
    events = [e for e in out.split(b"\n\n") if e]
    assert orjson.loads(events[0][6:])["choices"][0]["text"] == "A"
    assert events[1:] == [legacy[:-2], error[:-2], b"data: [DONE]"]


def test_a_chat_completion_reads_as_a_text_completion() -> None:
    done = completions.text_completion(
        {
            "id": "chatcmpl-9",
            "object": "chat.completion",
            "created": 2,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )
    assert done == {
        "id": "cmpl-9",
        "object": "text_completion",
        "created": 2,
        "model": "m",
        "choices": [{"text": "ok", "index": 0, "logprobs": None, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
