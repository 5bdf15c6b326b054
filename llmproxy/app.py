"""The Starlette app: routes, and the lifespan that opens and closes everything the gateway uses."""
from __future__ import annotations

import gc
import itertools
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from . import pipeline
from .endpoint import GatewayApp, client_request_id
from .messages_endpoint import ROUTES as DOOR_ROUTES
from .responses_endpoint import ROUTES as RESPONSES_ROUTES
from .responses_endpoint import routes as responses_routes
from .doors.responses_state import StoredResponses
from .store.responses_sql import SQLiteResponsesStore
from .admin import admin_routes
from .access import Access
from .cache import ResponseCache
from .config import Settings
from .context import RequestContext
from .errors import ClientDisconnected, GatewayError, InvalidRequest, MethodNotAllowed, ModelNotFound, NotFound
from .guard import Guard
from .logs import LineWriter, RequestLog, configure_logging
from .metrics import ROUTES as METRICS_ROUTES
from .metrics import Metrics
from .openapi import document as openapi_document
from .providers.base import Transport
from .classifier import Classifier
from .breakers import Health
from .registry import load_registry
from .router import list_models, resolve
from .scheduler import start_updater, stop_updater
from .store import usage_sql
from .store.cache_sql import SQLiteCacheStore
from .store.sqlite import SQLiteStore
from .usage import UsageRecorder
from .ui import ui_routes

log = logging.getLogger("llmproxy.app")
JSON = "application/json"


class RequestIds:
    """Unique request ids without a syscall each: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._next = itertools.count(1).__next__

    def new(self) -> str:
        return f"{self._prefix}{self._next():010x}"


def create_app(settings: Settings, *, configure_logs: bool = True, log_stream: IO[bytes] | None = None) -> Guard:
    """The gateway app. Logs go to stderr (or `log_stream`); `configure_logs=False` leaves logging
    alone, for embedding and tests."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer = None
        if configure_logs or log_stream is not None:
            writer = LineWriter(log_stream or sys.stderr.buffer)
            writer.start()
            configure_logging(writer, settings.log_level, settings.log_format)
        registry = load_registry(settings.registry_path)
        store = await SQLiteStore.open(settings.data_dir / "llmproxy.db")
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            auto_decompress=True, raise_for_status=False)
        usage_store = await usage_sql.SQLiteUsageStore.open(store.path)
        usage = UsageRecorder(usage_store.insert, interval_s=settings.usage_flush_interval_s,
                              batch_size=settings.usage_batch_size, max_rows=settings.usage_queue_max,
                              retain=usage_store.delete_before,
                              retention_days=settings.usage_retention_days)
        usage.start()
        request_log = RequestLog(writer, settings.log_level, settings.log_format, payloads=settings.log_payloads)
        app.state.gateway = pipeline.Gateway(settings, registry, Transport(session), usage, request_log, store)
        cache = ResponseCache(settings.cache, await SQLiteCacheStore.open(store.path) if settings.cache.persist else None)
        await cache.start()
        app.state.gateway.cache = cache
        responses_store = await SQLiteResponsesStore.open(store.path)
        responses = StoredResponses(responses_store, retention_days=settings.usage_retention_days)
        responses.start()
        app.state.gateway.responses = responses
        app.state.gateway.metrics = Metrics(app.state.gateway)
        app.state.gateway.health = Health(failures=settings.router.breaker_failures,
                                          cooldown_s=settings.router.breaker_cooldown_s)
        app.state.gateway.classifier = Classifier.load()
        access = await Access.open(app.state.gateway)   # sets gateway.auth, .limits, .access
        registry_task = start_updater(app.state.gateway)  # sets gateway.registry_updater; swaps gateway.registry
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise walk it again and again under load.
        gc.freeze()
        log.info("llmproxy ready", extra={"models": len(registry.models), "registry_version": registry.version,
                                          "data_dir": str(settings.data_dir)})
        try:
            yield
        finally:
            # uvicorn has drained in-flight requests and streams by now; write what they recorded.
            await stop_updater(registry_task)
            await usage.stop()
            await usage_store.close()
            await responses.stop()
            await responses_store.close()
            await access.close()
            await cache.stop()
            await session.close()
            await store.close()
            log.info("llmproxy stopped", extra={"usage_rows_written": usage.written})
            if writer is not None:
                writer.stop()

    routes = [
        Route("/v1/chat/completions", served_by_endpoint, methods=["POST"]),
        Route("/chat/completions", served_by_endpoint, methods=["POST"]),
        *(Route(path, served_by_endpoint, methods=["POST"]) for path in (*DOOR_ROUTES, *RESPONSES_ROUTES)),
        *responses_routes(),
        Route("/v1/models", models_list, methods=["GET"]),
        Route("/v1/models/{model:path}", models_retrieve, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *admin_routes(),
        *METRICS_ROUTES,
        *ui_routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers=dict.fromkeys((GatewayError, HTTPException, ClientDisconnect, Exception),
                                                     render_error))
    app.state.ids = RequestIds()
    return Guard(GatewayApp(app, doors={**DOOR_ROUTES, **RESPONSES_ROUTES}), settings)


async def served_by_endpoint(request: Request) -> Response:
    """POST /v1/chat/completions is answered by endpoint.GatewayApp before this router is reached;
    the route is here so that other methods on that path get a 405."""
    raise HTTPException(405)


async def models_list(request: Request) -> Response:
    gw: pipeline.Gateway = request.app.state.gateway
    rid = _request_id(request)
    gw.auth.authenticate(RequestContext(rid, {}), request.headers.get("authorization"))
    data = {"object": "list", "data": list_models(gw.registry, gw.settings)}
    return Response(orjson.dumps(data), headers={"x-request-id": rid}, media_type=JSON)


async def models_retrieve(request: Request) -> Response:
    gw: pipeline.Gateway = request.app.state.gateway
    rid = _request_id(request)
    name = request.path_params["model"]
    gw.auth.authenticate(RequestContext(rid, {}), request.headers.get("authorization"))
    for item in list_models(gw.registry, gw.settings):
        if item["id"] == name:
            return Response(orjson.dumps(item), headers={"x-request-id": rid}, media_type=JSON)
    try:
        provider, entry = resolve(name, gw.registry, gw.settings)[0]
    except InvalidRequest as exc:
        if exc.status == 400:   # a model that no provider here can serve is, to this route, not found
            raise ModelNotFound(exc.message, param="model") from None
        raise
    item = {"id": name, "object": "model", "created": 0, "owned_by": provider.name}
    if not entry.priced:
        item["pricing"] = "unknown"
    return Response(orjson.dumps(item), headers={"x-request-id": rid}, media_type=JSON)


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type=JSON)


async def readyz(request: Request) -> Response:
    gw: pipeline.Gateway | None = getattr(request.app.state, "gateway", None)
    checks = {"database": bool(gw and await gw.store.ping()), "registry": bool(gw and gw.registry.models)}
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks,
            "registry_version": gw.registry.version if gw else None}
    return Response(orjson.dumps(body), 200 if ready else 503, media_type=JSON)


async def openapi_json(request: Request) -> Response:
    """The OpenAPI document of the gateway's own routes (llmproxy/openapi.py)."""
    return Response(orjson.dumps(openapi_document()), media_type=JSON)


async def render_error(request: Request, exc: Exception) -> Response:
    """The one place where an error of a Starlette-served route becomes an OpenAI-shaped response
    (the raw-ASGI chat path renders its own, in pipeline.py). Handlers just raise GatewayError."""
    rid = _request_id(request)
    error = _as_gateway_error(request, exc, rid)
    return Response(error.to_json(), error.status, headers={"x-request-id": rid, **error.headers}, media_type=JSON)


def _as_gateway_error(request: Request, exc: Exception, rid: str) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return NotFound(f"no route for {request.method} {request.url.path}")
        if exc.status_code == 405:
            return MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        return GatewayError(str(exc.detail), status=exc.status_code)
    if isinstance(exc, ClientDisconnect):
        # The client went away mid-upload: nobody hears the answer, and it is no error of the gateway's.
        log.debug("client disconnected before sending its whole request", extra={"path": request.url.path})
        return ClientDisconnected("the client closed the connection before sending the whole request")
    log.error("unhandled error", exc_info=exc, extra={"request_id": rid})
    return GatewayError(f"internal error in the gateway (request id {rid})")


def _request_id(request: Request) -> str:
    return client_request_id(request.headers.get("x-request-id")) or request.app.state.ids.new()
