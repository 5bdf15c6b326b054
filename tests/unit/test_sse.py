from __future__ import annotations

from llmproxy.providers.sse import SSEDecoder, SSEEvent, encode


def test_events_split_across_chunks() -> None:
    d = SSEDecoder()
    assert d.feed(b'event: message_start\ndata: {"a"') == []
    assert d.feed(b": 1}\n\ndata: x\n") == [SSEEvent("message_start", b'{"a": 1}')]
    assert d.feed(b"\n") == [SSEEvent(None, b"x")]


def test_crlf_comments_and_multiline_data() -> None:
    d = SSEDecoder()
    events = d.feed(b": ping\r\n\r\ndata: a\r\ndata: b\r\n\r\n")
    assert events == [SSEEvent(None, b"a\nb")]


def test_flush_returns_unterminated_event() -> None:
    d = SSEDecoder()
    d.feed(b"data: [DONE]")
    assert d.flush() == [SSEEvent(None, b"[DONE]")]


def test_encode() -> None:
    assert encode({"a": 1}) == b'data: {"a":1}\n\n'
