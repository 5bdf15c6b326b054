"""Shared upstream transport: one pooled aiohttp session, timeouts, and the edge where transport
failures become gateway errors.

Adapters are pure translations; this module is the only one that knows which HTTP client the
gateway uses (aiohttp's, for the reasons and numbers in ARCHITECTURE.md). For streams it reads up
to the first event before the caller commits to a response, so a provider that fails up front can
still fall back to the next candidate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from ..config import ProviderSettings
from ..context import ChatCompletion, ChatRequest, Usage
from ..errors import GatewayError, UpstreamConnectionError, UpstreamError, UpstreamTimeout
from ..registry import ModelEntry
from .deadlines import Deadlines
from .sse import DONE, encode, iter_events

MAX_ERROR_BYTES = 64 * 1024  # of an error body: more than any provider's error JSON
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # of a whole (non-streamed) answer

# The header that carries our request id upstream, where the provider documents one: OpenAI logs
# X-Client-Request-Id with the request; compatible servers (vLLM and others) take X-Request-Id.
# Anthropic and Gemini document none, so they get nothing.
REQUEST_ID_HEADERS = {"openai": "x-client-request-id", "openai-compatible": "x-request-id"}


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class StreamState:
    """What the gateway learns from a stream while relaying it."""

    include_usage: bool  # the client asked for the usage chunk
    usage: Usage | None = None
    finish_reason: str | None = None
    completed: bool = False  # the provider ended the stream properly
    errored: bool = False  # the provider sent an error event (already passed on)


class Adapter(Protocol):
    """What the transport asks of a provider adapter. An adapter is a module of pure functions
    (providers/openai.py, anthropic.py, gemini.py); a module satisfies this Protocol structurally,
    and tests/providers/test_contract.py checks every entry of ADAPTERS against it."""

    NAME: str
    DEFAULT_BASE_URL: str
    RELAYS_ANSWER: bool  # parse_response changes nothing, so the provider's bytes may go out as they are

    def build_request(
        self, req: ChatRequest, model: ModelEntry, creds: ProviderSettings, *, stream: bool, raw: bytes | None = None
    ) -> UpstreamRequest:
        """The upstream request; `raw` is the client's body, for an adapter that can send it unchanged."""
        ...

    def parse_response(self, body: bytes, model: ModelEntry) -> ChatCompletion:
        """A whole upstream answer as an OpenAI chat completion."""
        ...

    def relay_stream(self, chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
        """The upstream stream's bytes in, OpenAI SSE bytes out, learning usage and the end in `state`."""
        ...

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str], *, provider: str = ...) -> GatewayError:
        """The gateway error for an upstream error status and the start of its body."""
        ...


@dataclass(slots=True)
class UpstreamResult:
    completion: ChatCompletion
    status: int
    seconds: float  # time spent waiting on the provider
    body: bytes | None = None  # the provider's answer as sent, when it is the completion unchanged


class Transport:
    """Sends upstream requests over one shared aiohttp.ClientSession (made in the app's lifespan)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self._timeouts: dict[tuple[str, bool], aiohttp.ClientTimeout] = {}
        self._deadlines = Deadlines()

    def _timeout(self, provider: ProviderSettings, stream: bool) -> aiohttp.ClientTimeout:
        key = (provider.name, stream)
        timeout = self._timeouts.get(key)
        if timeout is None:
            # A stream may last long; what must not last is the wait for its first event (bounded
            # in open_stream) and the silence between two reads (sock_read, set to the idle
            # timeout once the stream has opened). A whole answer's time (timeout_s) is kept by
            # `_deadlines` instead of a timer per request.
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=provider.connect_timeout_s,
                sock_read=first_byte_s(provider) if stream else None,
            )
            self._timeouts[key] = timeout
        return timeout

    def _post(
        self,
        adapter: Adapter,
        provider: ProviderSettings,
        model: ModelEntry,
        request: ChatRequest,
        request_id: str | None,
        raw: bytes | None,
        *,
        stream: bool,
    ) -> Any:
        """The adapter's request, on its way: awaiting this gives the response, its headers read.
        (Returned rather than awaited here: one coroutine frame less on every resume.)"""
        up = adapter.build_request(request, model, provider, stream=stream, raw=raw)
        if request_id is not None:
            _tag(up, provider, request_id)
        # allow_redirects=False: a redirect would carry the provider key to wherever it points
        return self.session.post(
            up.url, data=up.body, headers=up.headers, allow_redirects=False, timeout=self._timeout(provider, stream)
        )

    @staticmethod
    async def _refused(adapter: Adapter, provider: ProviderSettings, resp: aiohttp.ClientResponse) -> GatewayError:
        """The gateway error for an error status, the start of its body read and the connection
        released (closed, when a long error page was left unread)."""
        try:
            body = await _read_at_most(resp, MAX_ERROR_BYTES)
        finally:
            resp.release()
        return adapter.map_error(resp.status, body, resp.headers, provider=provider.name)

    async def complete(
        self,
        adapter: Adapter,
        provider: ProviderSettings,
        model: ModelEntry,
        request: ChatRequest,
        request_id: str | None = None,
        raw: bytes | None = None,
    ) -> UpstreamResult:
        """`raw`: the client's body as it came, for an adapter that can send it on unchanged."""
        started = time.perf_counter()
        sending = self._post(adapter, provider, model, request, request_id, raw, stream=False)
        deadline = self._deadlines.start(provider.timeout_s)
        try:
            resp = await sending
            if resp.status >= 300:
                raise await self._refused(adapter, provider, resp)
            try:
                size = resp.content_length
                if size is not None and size <= MAX_ANSWER_BYTES:
                    body = await resp.read()
                else:
                    body = await _read_at_most(resp, MAX_ANSWER_BYTES + 1)
                    if len(body) > MAX_ANSWER_BYTES:
                        raise UpstreamError(f"{provider.name} sent an answer over {MAX_ANSWER_BYTES} bytes")
            finally:
                resp.release()
        except asyncio.CancelledError:
            if not deadline.passed():
                raise
            raise transport_error(provider, TimeoutError()) from None
        except Exception as exc:  # noqa: BLE001 - every transport failure is translated right here
            raise transport_error(provider, exc) from None
        finally:
            self._deadlines.end(deadline)
        seconds = time.perf_counter() - started
        return UpstreamResult(
            adapter.parse_response(body, model), resp.status, seconds, body if adapter.RELAYS_ANSWER else None
        )

    async def forward(
        self, provider: ProviderSettings, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        """POST a request a front door passes on as it is (Anthropic's count_tokens): status and
        body, any failure a gateway error."""
        deadline = self._deadlines.start(provider.timeout_s)
        try:
            async with self.session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=self._timeout(provider, False)
            ) as resp:
                return resp.status, await _read_at_most(resp, MAX_ERROR_BYTES)
        except asyncio.CancelledError:
            if not deadline.passed():
                raise
            raise transport_error(provider, TimeoutError()) from None
        except Exception as exc:  # noqa: BLE001 - translated to a gateway error, as above
            raise transport_error(provider, exc) from None
        finally:
            self._deadlines.end(deadline)

    async def open_stream(
        self,
        adapter: Adapter,
        provider: ProviderSettings,
        model: ModelEntry,
        request: ChatRequest,
        state: StreamState,
        request_id: str | None = None,
        raw: bytes | None = None,
    ) -> OpenStream:
        """Start a stream and read its first event, so that a provider that fails up front (an
        error status, or an error event first) raises here and can fall back."""
        started = time.perf_counter()
        sending = self._post(adapter, provider, model, request, request_id, raw, stream=True)
        try:
            resp = await sending
            if resp.status >= 300:
                raise await self._refused(adapter, provider, resp)
        except Exception as exc:  # noqa: BLE001 - translated to a gateway error, as above
            raise transport_error(provider, exc, first_byte_s(provider)) from None
        deadline = Deadline(provider)
        # From here on the stream object owns the response: every way out closes it through it.
        stream = OpenStream(b"", adapter.relay_stream(_read(resp, provider, deadline), model, state), resp, 0.0)
        try:
            stream.first = await stream.relay.__anext__()
            if stream_opening(stream.first) is False:
                raise UpstreamError(f"{provider.name} failed at the start of the stream: {error_message(stream.first)}")
        except StopAsyncIteration:
            await stream.close()
            raise UpstreamError(f"{provider.name} ended the stream before sending anything") from None
        except BaseException:
            await stream.close()
            raise
        deadline.opened()
        _idle(resp, provider)
        stream.seconds = time.perf_counter() - started
        return stream


class Deadline:
    """When a stream must have got somewhere: its first event within the first-byte timeout, then
    its end within stream_timeout_s (if set). Checked as bytes arrive, which costs no timer (a
    provider that sends nothing at all is ended by aiohttp's read timeout instead)."""

    __slots__ = ("at", "_start", "_provider", "_opening")

    def __init__(self, provider: ProviderSettings) -> None:
        self._provider, self._opening, self._start = provider, True, time.monotonic()
        self.at: float | None = self._start + first_byte_s(provider)

    def opened(self) -> None:
        limit = self._provider.stream_timeout_s
        self.at = self._start + limit if limit is not None else None
        self._opening = False

    def passed(self) -> UpstreamTimeout:
        if self._opening:
            return self.silent()
        return UpstreamTimeout(
            f"{self._provider.name} stream ran past its limit of {self._provider.stream_timeout_s:g}s"
        )

    def silent(self) -> UpstreamTimeout:
        if self._opening:
            return UpstreamTimeout(
                f"{self._provider.name} sent no first event in time "
                f"(first-byte timeout {first_byte_s(self._provider):g}s)"
            )
        return UpstreamTimeout(f"{self._provider.name} fell silent in the middle of the stream")


class OpenStream:
    """A started upstream stream, and the one owner of its response: the first output already read
    (`first`), the rest still to come (`relay`, the adapter's translation of the body, which only
    iterates), and close(), which ends the response exactly once however the stream ends."""

    __slots__ = ("first", "relay", "_resp", "seconds", "closed")

    def __init__(self, first: bytes, relay: AsyncIterator[bytes], resp: aiohttp.ClientResponse, seconds: float) -> None:
        self.first, self.relay, self._resp, self.seconds = first, relay, resp, seconds
        self.closed = False

    async def close(self, *, clean: bool = False) -> None:
        """A clean end (the provider finished it) returns the connection to the pool; anything
        else (a client that left, a failure, a fallback) drops it at once, so the provider stops
        generating. Later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        if clean:
            self._resp.release()
        else:
            self._resp.close()
        await _aclose(self.relay)


async def _read(resp: aiohttp.ClientResponse, provider: ProviderSettings, deadline: Deadline) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_any():
            if deadline.at is not None and time.monotonic() > deadline.at:
                raise deadline.passed()
            yield chunk
    except (asyncio.CancelledError, GeneratorExit, GatewayError):
        raise
    except aiohttp.ServerTimeoutError:
        raise deadline.silent() from None
    except Exception as exc:  # noqa: BLE001 - any read failure becomes a gateway error
        raise transport_error(provider, exc) from None


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or its first `limit` bytes: a provider's 10 MB error page must not be held whole."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await resp.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def first_byte_s(provider: ProviderSettings) -> float:
    return provider.first_byte_timeout_s or provider.timeout_s


def _idle(resp: aiohttp.ClientResponse, provider: ProviderSettings) -> None:
    """From the first event on, a stream may fall silent for the idle timeout, not the first-byte one."""
    idle = provider.stream_idle_timeout_s or provider.timeout_s
    connection = resp.connection
    protocol = connection.protocol if connection is not None else None
    if protocol is not None and idle != first_byte_s(provider):
        protocol.read_timeout = idle
        reschedule = getattr(protocol, "_reschedule_timeout", None)  # else the next gap still gets the old value
        if reschedule is not None:
            reschedule()


async def _aclose(agen: Any) -> None:
    close: Callable[[], Any] | None = getattr(agen, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # noqa: BLE001 - closing a finished relay must not mask the real outcome
            pass


def _tag(up: UpstreamRequest, provider: ProviderSettings, request_id: str) -> None:
    name = REQUEST_ID_HEADERS.get(provider.kind)
    if name is not None and request_id.isascii() and name not in up.headers:
        up.headers[name] = request_id


def stream_opening(piece: bytes) -> bool | None:
    """What a relayed piece says about the stream: True if it carries content (or the end), False
    if it is an error event, None while the stream is still opening (role chunk, pings)."""
    for block in piece.split(b"\n\n"):
        if not block.startswith(b"data:"):
            if block.startswith(b"event:"):  # Anthropic's or OpenAI Responses' own events, relayed to their door
                name = block[6 : block.find(b"\n")].strip()
                if name == b"error" or name == b"response.failed":
                    return False
                if name in _ANTHROPIC_CONTENT or (name.startswith(b"response.") and name not in _RESPONSES_OPENING):
                    return True
            continue
        data = block[5:].strip()
        if data == b"[DONE]":
            return True
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("error"):
            return False
        choices = event.get("choices")
        if not choices:
            if event.get("usage"):
                return True
            continue
        for choice in choices:
            delta = choice.get("delta") or {}
            if (
                delta.get("content")
                or delta.get("tool_calls")
                or delta.get("refusal")
                or delta.get("reasoning_content")
                or choice.get("finish_reason")
                or choice.get("text")
            ):
                return True
    return None


_ANTHROPIC_CONTENT = frozenset((b"content_block_start", b"content_block_delta", b"message_delta", b"message_stop"))
_RESPONSES_OPENING = frozenset((b"response.created", b"response.in_progress", b"response.queued"))


def error_message(piece: bytes) -> str:
    for block in piece.split(b"\n\n"):
        if block.startswith((b"event: error", b"event: response.failed")):
            block = block[block.find(b"\ndata:") + 1 :]
        if block.startswith(b"data:"):
            try:
                data = orjson.loads(block[5:])
                error = (
                    data.get("error")
                    or (data.get("response") or {}).get("error")
                    or (data if data.get("type") == "error" else None)
                )  # OpenAI Responses' shapes
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(error, dict):
                return str(error.get("message") or error.get("type") or "error event")
            if error:
                return str(error)
    return "error event"


def transport_error(provider: ProviderSettings, exc: BaseException, timeout_s: float | None = None) -> GatewayError:
    """The gateway error for an aiohttp failure; names the provider, never its key or full URL."""
    if isinstance(exc, GatewayError):
        return exc
    name = provider.name
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(f"{name} did not answer in time (timeout {timeout_s or provider.timeout_s:g}s)")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectionError(
            f"could not connect to {name} at {_host(provider.base_url)}: {exc.os_error.strerror or 'connection failed'}"
        )
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return UpstreamConnectionError(f"the connection to {name} broke before the answer was complete")
    return UpstreamError(f"request to {name} failed ({type(exc).__name__})")


def _host(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].rsplit("@", 1)[-1]


def translated(translate: Callable[..., AsyncIterator[dict[str, Any]]]) -> Callable[..., AsyncIterator[bytes]]:
    """An adapter's relay_stream for a stream translator (provider SSE events in, OpenAI chunks out)."""

    def relay_stream(chunks: AsyncIterator[bytes], model: ModelEntry, state: StreamState) -> AsyncIterator[bytes]:
        return relay_translated(chunks, model, state, translate)

    return relay_stream


async def relay_translated(
    chunks: AsyncIterator[bytes],
    model: ModelEntry,
    state: StreamState,
    translate: Callable[..., AsyncIterator[dict[str, Any]]],
) -> AsyncIterator[bytes]:
    """Run a provider's stream translator (SSE events in, OpenAI chunk dicts out) and encode its
    output as our SSE: `data: [DONE]` after a clean end, an OpenAI-style error event after a
    provider error event or a dropped connection, never a hang."""
    try:
        async for chunk in translate(iter_events(chunks), model, state):
            yield encode(chunk)
    except GatewayError as exc:
        yield encode(exc.to_dict())
        return
    if not state.completed:
        yield encode(UpstreamError(f"{model.provider} stream ended before it was complete").to_dict())
        return
    yield DONE
