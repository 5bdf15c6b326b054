"""One SSE framer for every upstream stream: any split of a valid stream, with LF, CRLF or CR line
ends, gives the same events, whether they are parsed (Anthropic, Gemini) or relayed (OpenAI)."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmproxy.errors import UpstreamError
from llmproxy.providers import openai, sse
from llmproxy.providers.base import StreamState
from llmproxy.providers.sse import SSEDecoder, SSEEvent, SSEFramer, parse_blocks
from llmproxy.registry import ModelEntry

MODEL = ModelEntry(id="gpt-4o-mini", provider="openai", provider_model="gpt-4o-mini")
ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])
VALUE = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """A valid SSE stream with mixed line ends, and the events it holds."""
    lines: list[str] = []
    expected: list[SSEEvent] = []
    for _ in range(draw(st.integers(1, 5))):
        name = draw(st.none() | st.sampled_from(["message_start", "content_block_delta", "ping"]))
        data = draw(st.lists(VALUE, max_size=3))
        if draw(st.booleans()):
            lines.append(": keep-alive")
        if name is not None:
            lines.append(f"event: {name}")
        lines += [f"data: {d}" for d in data]
        lines.append("")  # the blank line that ends the event
        if data or name is not None:
            expected.append(SSEEvent(name, "\n".join(data).encode()))
    text = ""
    previous = ""
    for line in lines:
        ending = draw(ENDINGS)
        if previous == "\r" and line == "" and ending == "\n":
            ending = "\r\n"  # CR then LF would be one CRLF, not a line end and a blank line
        text += line + ending
        previous = ending
    return text.encode(), expected


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in pairwise(edges)]


@settings(max_examples=300, deadline=None, database=None)
@given(streams(), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_split_of_a_stream_gives_the_same_events(stream: tuple[bytes, list[SSEEvent]], points: list[int]) -> None:
    data, expected = stream
    decoder = SSEDecoder()
    events = [e for piece in cut(data, points) for e in decoder.feed(piece)] + decoder.flush()
    assert events == expected


@settings(max_examples=200, deadline=None, database=None)
@given(streams(), st.lists(st.integers(0, 10_000), max_size=12))
def test_framer_blocks_are_the_same_events_for_any_split(
    stream: tuple[bytes, list[SSEEvent]], points: list[int]
) -> None:
    data, expected = stream
    framer = SSEFramer()
    ready = b"".join(framer.feed(piece) for piece in cut(data, points)) + framer.flush()
    assert b"\r" not in ready
    assert parse_blocks(ready) == expected


def test_crlf_split_between_cr_and_lf_stays_one_event() -> None:
    # fails on the decoder that turned a trailing CR into a line end before seeing the LF
    decoder = SSEDecoder()
    events = decoder.feed(b"data: a\r") + decoder.feed(b"\ndata: b\r") + decoder.feed(b"\n\r\n") + decoder.flush()
    assert events == [SSEEvent(None, b"a\nb")]


def _relay(pieces: list[bytes]) -> tuple[list[bytes], StreamState]:
    state = StreamState(include_usage=True)

    async def source():
        for piece in pieces:
            yield piece

    async def run() -> bytes:
        return b"".join([p async for p in openai.relay_stream(source(), MODEL, state)])

    out = asyncio.run(run())
    return [block for block in out.split(b"\n\n") if block], state


CHUNKS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "hello\r\nthere"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
]


def python_sse(ending: str) -> bytes:
    """A stream as a Python server writes it: json.dumps spacing, and the chosen line end."""
    import json

    body = "".join(f"data: {json.dumps(c)}{ending}{ending}" for c in CHUNKS) + f"data: [DONE]{ending}{ending}"
    return body.encode()


@settings(max_examples=150, deadline=None, database=None)
@given(ENDINGS, st.lists(st.integers(0, 10_000), max_size=10))
def test_openai_relay_frames_like_the_decoder(ending: str, points: list[int]) -> None:
    data = python_sse(ending)
    blocks, state = _relay(cut(data, points))
    payloads = [b[6:] for b in blocks]
    assert payloads[-1] == b"[DONE]"
    assert [orjson.loads(p) for p in payloads[:-1]] == CHUNKS
    assert state.completed and state.finish_reason == "stop"
    assert state.usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_finish_reason_and_usage_found_with_json_spacing() -> None:
    # fails on the byte scan for `"finish_reason":"` (no space), which Python servers never write
    blocks, state = _relay([python_sse("\n")])
    assert state.finish_reason == "stop"
    assert state.usage is not None and state.usage["total_tokens"] == 7


def test_finish_reason_and_usage_with_any_spacing_around_the_colon() -> None:
    data = (
        b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason"\t :  "length"}]}\n\n'
        b'data: {"choices": [], "usage" :{"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}\n\n'
        b"data: [DONE]\n\n"
    )
    blocks, state = _relay([data])
    assert state.finish_reason == "length" and state.usage == {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
    }


def test_text_that_looks_like_a_key_is_not_one() -> None:
    content = 'say "finish_reason": "stop" and "usage": {"x": 1}'
    data = (
        b"data: "
        + orjson.dumps({"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]})
        + b"\n\n"
    )
    blocks, state = _relay([data])
    assert state.finish_reason is None and state.usage is None
    assert orjson.loads(blocks[0][6:])["choices"][0]["delta"]["content"] == content


def test_error_event_with_spacing_marks_the_stream_errored() -> None:
    data = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    blocks, state = _relay([data])
    assert state.errored and len(blocks) == 1  # passed on, and no second "ended early" error after it


def test_an_event_that_never_ends_is_an_upstream_error_not_unbounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "MAX_PENDING_BYTES", 1000)
    framer = SSEFramer()
    framer.feed(b"data: " + b"x" * 500)
    with pytest.raises(UpstreamError, match="without ending an event"):
        framer.feed(b"x" * 600)
