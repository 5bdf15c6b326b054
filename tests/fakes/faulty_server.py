"""A misbehaving OpenAI-compatible server for the upstream-fault suite.

Raw asyncio on loopback rather than an ASGI app, so that it can do what a well-behaved framework
won't: reset the connection halfway through a body, fall silent after the headers, drip one byte
a second. It writes JSON the way Python servers do (`"finish_reason": "stop"`, with spaces) and
checks the key as the real API does. The model name picks the fault (or, for a request to a real
model's name, a last user message "fault: <name>"):

  reset-body      a non-streamed answer cut by a TCP reset halfway through its declared length
  reset-opening   a stream: the role chunk, then a reset (no content yet: the gateway may fall back)
  reset-stream    a stream: the role chunk and some content, then a reset
  silent          the response headers, then nothing
  silent-stream   a stream: the role chunk and some content, then nothing
  thinking        a stream: the role chunk, then nothing (a reasoning model before its first token)
  bad-json        200 with a body that is not JSON
  big-error       500 with a 10 MB HTML page
  endless         a stream of content that never ends
  no-done         a whole stream, usage included, without `data: [DONE]`
  drip            the answer (stream or not), one byte a second
  redirect        a 307 to another path, which counts who follows it
  busy-until      a 429 whose Retry-After is an HTTP-date
  huge-answer     a 200 with a 2 MB answer, chunked (no length up front)
  anything else   a normal answer, streamed or not

Every fault stops by itself after LINGER_S at most; `state` counts the requests and the
connections that the client closed before the fault was done with them.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.openai_server import API_KEY
from tests.fakes.serve import free_port

Reader, Writer = asyncio.StreamReader, asyncio.StreamWriter
LINGER_S = 20.0
BIG_ERROR = (
    b"<html><body>" + b"<p>Internal error, please try again later.</p>" * (10 * 1024 * 1024 // 46) + b"</body></html>"
)  # 10 MB
USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


@dataclass
class FaultState:
    models: list[str] = field(default_factory=list)
    client_closed: int = 0  # connections the client closed before the fault was done
    redirected: int = 0
    big_error_sent: int = 0  # bytes of the 10 MB page the client took before it closed

    def reset(self) -> None:
        self.models.clear()
        self.client_closed = self.redirected = self.big_error_sent = 0


class FaultyServer:
    """Runs on its own event loop in a thread, like tests.fakes.serve.ServerThread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = FaultState()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    def __enter__(self) -> FaultyServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the faulty server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self, reader: Reader, writer: Writer) -> None:
        try:
            await asyncio.wait_for(self._handle(reader, writer), LINGER_S)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    async def _handle(self, reader: Reader, writer: Writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        path = request_line.split(" ")[1]
        if path.endswith("/redirect-target"):
            self.state.redirected += 1
            return await _json(writer, 418, {"error": {"message": "followed a redirect", "type": "x"}})
        if headers.get("authorization") != f"Bearer {API_KEY}":
            return await _json(
                writer,
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
        try:
            request = json.loads(body)
            model, stream = request["model"], request.get("stream") is True
        except (ValueError, KeyError, TypeError):
            return await _json(
                writer,
                400,
                {
                    "error": {
                        "message": "We could not parse the JSON body of your request.",
                        "type": "invalid_request_error",
                    }
                },
            )
        self.state.models.append(model)
        await FAULTS.get(model, FAULTS.get(_last_user_text(request), _normal))(self.state, reader, writer, stream)


def _last_user_text(request: dict[str, Any]) -> str:
    """A fault asked for in the prompt ("fault: silent"), for requests to a priced model's name."""
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            text = message["content"]
            return text[7:].split(" ", 1)[0] if text.startswith("fault: ") else ""
    return ""


async def _json(writer: Writer, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    writer.write(_head(status, "application/json", len(body)) + body)
    await writer.drain()


def _head(status: int, content_type: str, length: int | None = None, extra: str = "") -> bytes:
    size = f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
    return (
        f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n{size}\r\n{extra}connection: close\r\n\r\n"
    ).encode()


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-faulty",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "faulty-1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _stream_events(words: int = 3) -> list[bytes]:
    return (
        [_event({"role": "assistant", "content": ""})]
        + [_event({"content": f"word{i} "}) for i in range(words)]
        + [
            _event({}, "stop"),
            b"data: "
            + json.dumps(
                {"id": "chatcmpl-faulty", "object": "chat.completion.chunk", "choices": [], "usage": USAGE}
            ).encode()
            + b"\n\n",
            b"data: [DONE]\n\n",
        ]
    )


def _completion() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-faulty",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "faulty-1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "fine"},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    ).encode()


async def _client_gone(state: FaultState, reader: Reader) -> None:
    """Wait (up to LINGER_S) for the client to close the connection, and count it."""
    try:
        await asyncio.wait_for(reader.read(), LINGER_S)
        state.client_closed += 1
    except (TimeoutError, ConnectionError):
        pass


async def _reset(writer: Writer) -> None:
    """A TCP reset, after what was written has had time to arrive."""
    await writer.drain()
    await asyncio.sleep(0.05)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _normal(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    if stream:
        writer.write(_head(200, "text/event-stream") + b"".join(_chunked(e) for e in _stream_events()) + b"0\r\n\r\n")
    else:
        body = _completion()
        writer.write(_head(200, "application/json", len(body)) + body)
    await writer.drain()


async def _reset_body(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    body = _completion()
    writer.write(_head(200, "application/json", len(body)) + body[: len(body) // 2])
    await _reset(writer)


async def _reset_opening(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    writer.write(_head(200, "text/event-stream") + _chunked(_stream_events()[0]))
    await _reset(writer)


async def _reset_stream(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    writer.write(_head(200, "text/event-stream") + b"".join(_chunked(e) for e in _stream_events()[:3]))
    await _reset(writer)


async def _silent(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    writer.write(_head(200, "text/event-stream" if stream else "application/json", None if stream else 400))
    await writer.drain()
    await _client_gone(state, reader)


async def _thinking(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    writer.write(_head(200, "text/event-stream") + _chunked(_stream_events()[0]))
    await writer.drain()
    await _client_gone(state, reader)


async def _silent_stream(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    writer.write(_head(200, "text/event-stream") + b"".join(_chunked(e) for e in _stream_events()[:3]))
    await writer.drain()
    await _client_gone(state, reader)


async def _bad_json(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    body = b'{"id": "chatcmpl-faulty", "choices": [{"index": 0, "message": {"content": "cut'
    writer.write(_head(200, "text/event-stream" if stream else "application/json", len(body)) + body)
    await writer.drain()


async def _big_error(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    writer.transport.set_write_buffer_limits(high=64 * 1024)
    writer.write(_head(500, "text/html", len(BIG_ERROR)))
    try:
        for start in range(0, len(BIG_ERROR), 64 * 1024):
            writer.write(BIG_ERROR[start : start + 64 * 1024])
            await writer.drain()
            state.big_error_sent = start + 64 * 1024
    except ConnectionError:
        state.client_closed += 1


async def _huge_answer(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    """A 200 whose body (chunked, so no length up front) is a 2 MB JSON answer."""
    content = "x" * (2 * 1024 * 1024)
    body = _completion().replace(b'"content": "fine"', b'"content": "' + content.encode() + b'"')
    writer.write(_head(200, "application/json"))
    try:
        for start in range(0, len(body), 64 * 1024):
            writer.write(_chunked(body[start : start + 64 * 1024]))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except ConnectionError:
        state.client_closed += 1


async def _endless(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    writer.write(_head(200, "text/event-stream") + _chunked(_stream_events()[0]))
    try:
        while True:
            writer.write(_chunked(_event({"content": "more "})))
            await writer.drain()
            await asyncio.sleep(0.01)
    except ConnectionError:
        state.client_closed += 1


async def _no_done(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    writer.write(_head(200, "text/event-stream") + b"".join(_chunked(e) for e in _stream_events()[:-1]) + b"0\r\n\r\n")
    await writer.drain()


async def _drip(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    body = b"".join(_stream_events()) if stream else _completion()
    writer.write(_head(200, "text/event-stream" if stream else "application/json", len(body)))
    try:
        for i in range(len(body)):
            writer.write(body[i : i + 1])
            await writer.drain()
            await asyncio.sleep(1.0)
            if reader.at_eof():
                break
    except ConnectionError:
        pass
    await _client_gone(state, reader)


async def _busy_until(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    """A 429 whose Retry-After is an HTTP-date, 30 s from now (RFC 9110 allows either form)."""
    body = json.dumps(
        {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    ).encode()
    until = email.utils.formatdate(time.time() + 30, usegmt=True)
    writer.write(_head(429, "application/json", len(body), f"retry-after: {until}\r\n") + body)
    await writer.drain()


async def _redirect(state: FaultState, reader: Reader, writer: Writer, stream: bool) -> None:
    writer.write(_head(307, "text/plain", 0, "location: /v1/redirect-target\r\n"))
    await writer.drain()


FAULTS = {
    "reset-body": _reset_body,
    "reset-opening": _reset_opening,
    "reset-stream": _reset_stream,
    "silent": _silent,
    "silent-stream": _silent_stream,
    "thinking": _thinking,
    "bad-json": _bad_json,
    "big-error": _big_error,
    "endless": _endless,
    "no-done": _no_done,
    "drip": _drip,
    "redirect": _redirect,
    "busy-until": _busy_until,
    "huge-answer": _huge_answer,
}
