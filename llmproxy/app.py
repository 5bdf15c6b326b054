"""The Starlette app: routes, and the lifespan that opens and closes everything the gateway uses."""

from __future__ import annotations

import gc
import itertools
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import IO, TYPE_CHECKING, Any

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from . import pipeline
from .endpoint import GatewayApp, client_request_id
from .messages_endpoint import ROUTES as MESSAGES_ROUTES
from .openai_endpoint import ROUTES as OPENAI_DOOR_ROUTES
from .responses_endpoint import ROUTES as RESPONSES_ROUTES
from .responses_endpoint import routes as responses_routes
from .doors.responses_state import StoredResponses
from .admin import admin_routes
from .access import Access
from .cache import ResponseCache
from .cache_tiers import disk_tier
from .config import Settings
from .context import RequestContext
from .current import Current
from .errors import (
    ClientDisconnected,
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    ServiceUnavailable,
)
from .guard import Guard
from .logs import LineWriter, RequestLog, configure_logging
from .metrics import ROUTES as METRICS_ROUTES
from .metrics import Metrics
from .openapi import document as openapi_document
from .providers.base import Transport
from .classifier import Classifier
from .breakers import Health
from .registry import load_registry
from .router import Resolutions, list_models, resolve
from .scheduler import RegistryUpdater, start_updater, stop_updater
from .store.backends import DATABASE_AWAY, open_stores
from .store.cache_sql import SQLiteCacheStore
from .usage import UsageRecorder
from .ui import ui_routes

if TYPE_CHECKING:
    from .shared.deployment import Deployment

log = logging.getLogger("llmproxy.app")
DOOR_ROUTES = {**MESSAGES_ROUTES, **OPENAI_DOOR_ROUTES}  # path -> raw handler of a front door beside chat
JSON = "application/json"


class RequestIds:
    """Unique request ids without a syscall each: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._next = itertools.count(1).__next__

    def new(self) -> str:
        return f"{self._prefix}{self._next():010x}"


@asynccontextmanager
async def build_gateway(settings: Settings, writer: LineWriter | None = None) -> AsyncIterator[pipeline.Gateway]:
    """Every service of the gateway, built in order, then the Gateway once, with nothing left to
    fill in; on exit each service is closed, the last built first (uvicorn has drained in-flight
    requests and streams by then, so the usage log writes what they recorded).

    A new service (a store backend, a front door's state) is built here like the others: open it,
    push its close on the stack, pass it to the Gateway as a field of its own."""
    async with AsyncExitStack() as stack:
        settings_ref = Current(settings)  # owned by Access: the vault's provider keys
        registry_ref = Current(load_registry(settings.registry_path))  # owned by the RegistryUpdater
        stores = await open_stores(settings)  # SQLite, or PostgreSQL when a database URL is set
        stack.push_async_callback(stores.close)
        shared = await open_deployment(settings)  # Redis: None without a url
        if shared is not None:
            stack.push_async_callback(shared.close)
        # DummyCookieJar: a provider's cookies (Cloudflare's, on the real APIs) are never kept, so
        # one caller's request never carries what the provider set on another's.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            raise_for_status=False,
        )
        stack.push_async_callback(session.close)
        usage = UsageRecorder(
            stores.usage.insert,
            interval_s=settings.usage_flush_interval_s,
            batch_size=settings.usage_batch_size,
            max_rows=settings.usage_queue_max,
            retain=stores.usage.delete_before,
            retention_days=settings.usage_retention_days,
        )
        usage.start()
        stack.push_async_callback(usage.stop)
        shared_tier = shared.cache if shared is not None else None
        cache = ResponseCache(
            settings.cache,
            await SQLiteCacheStore.open(stores.local_path, settings.cache.max_disk_bytes)
            if disk_tier(settings.cache, shared_tier)
            else None,
            shared=shared_tier,
        )
        stack.push_async_callback(cache.stop)
        await cache.start()
        health = Health(failures=settings.router.breaker_failures, cooldown_s=settings.router.breaker_cooldown_s)
        # Stored Responses API answers: on the configured backend (shared by every gateway on PostgreSQL).
        responses = StoredResponses(stores.responses, retention_days=settings.usage_retention_days)
        responses.start()
        stack.push_async_callback(responses.stop)
        access = await Access.open(settings_ref, stores, shared)
        stack.push_async_callback(access.close)
        updater = RegistryUpdater(
            settings, current=registry_ref.get, on_change=registry_ref.set, history=stores.registry
        )
        stores.watch_changes(updater.wake, what="registry")
        if shared is not None:
            share_health_and_registry(health, updater, shared)
        gateway = pipeline.Gateway(
            settings_ref=settings_ref,
            registry_ref=registry_ref,
            store=stores,
            transport=Transport(session),
            usage=usage,
            usage_reports=stores.usage,
            request_log=RequestLog(writer, settings.log_level, settings.log_format, payloads=settings.log_payloads),
            cache=cache,
            health=health,
            resolutions=Resolutions(),
            classifier=Classifier.load(),
            metrics=Metrics(settings_ref, registry_ref, usage=usage, cache=cache, breakers=health, shared=shared),
            access=access,
            auth=access.auth,
            limits=access.limits,
            registry_updater=updater,
            shared=shared,
            responses=responses,
        )
        stack.push_async_callback(stop_updater, start_updater(updater))
        yield gateway


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
        try:
            async with build_gateway(settings, writer) as gateway:
                app.state.gateway = gateway
                served.gateway = gateway  # (served: made below, before the lifespan ever runs)
                # Everything built so far lives as long as the process: keep it out of the
                # collector's full passes, which otherwise walk it again and again under load.
                gc.freeze()
                log.info(
                    "llmproxy ready",
                    extra={
                        "models": len(gateway.registry.models),
                        "registry_version": gateway.registry.version,
                        "data_dir": str(settings.data_dir),
                        "database": gateway.store.backend,
                    },
                )
                yield
            log.info("llmproxy stopped", extra={"usage_rows_written": gateway.usage.written})
        finally:
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
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=dict.fromkeys((GatewayError, HTTPException, ClientDisconnect, Exception), render_error),
    )
    app.state.ids = RequestIds()
    served = GatewayApp(app, doors={**DOOR_ROUTES, **RESPONSES_ROUTES})
    return Guard(served, settings)


async def open_deployment(settings: Settings) -> Deployment | None:
    """The state shared with the deployment's other processes; redis-py is imported only for it."""
    if settings.redis.url is None:
        return None
    from .shared.deployment import Deployment

    return await Deployment.open(settings.redis)


def share_health_and_registry(health: Health, updater: RegistryUpdater, shared: Deployment) -> None:
    """Breakers opened here hold the provider off in every process; a registry version written here
    is announced, and the others look for it at once (without a shared database, a lock in Redis
    keeps the deployment's registry writers apart)."""
    notifier = shared.notifier
    health.on_open = lambda provider, seconds: notifier.publish("breaker", provider=provider, seconds=seconds)
    notifier.on(
        "breaker",
        lambda m: health.hold(str(m["provider"]), float(m["seconds"])) if m.get("kind") == "breaker" else None,
    )
    updater.deployment_lock = shared.registry_lock
    updater.published = lambda version: notifier.publish("registry", version=version)
    notifier.on("registry", lambda _: updater.wake())


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
        if exc.status == 400:  # a model that no provider here can serve is, to this route, not found
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
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "checks": checks,
        "registry_version": gw.registry.version if gw else None,
    }
    if gw is not None and gw.shared is not None:
        # Still ready without Redis (requests are served on per-process limits), but say so.
        link = gw.shared.link
        body["redis"] = {
            "up": link.up,
            "live_processes": link.live_processes,
            "limits": "shared" if link.up else f"per process (1/{link.divisor()})",
        }
        if not link.up:
            body["degraded"] = ["redis"]
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
    if isinstance(exc, DATABASE_AWAY):  # an admin call while the database is away: try again later
        log.warning("database unreachable: %s", exc, extra={"request_id": rid, "path": request.url.path})
        return ServiceUnavailable(
            "the database is unreachable right now; model requests are still served, try this again shortly",
            headers={"retry-after": "5"},
        )
    log.error("unhandled error", exc_info=exc, extra={"request_id": rid})
    return GatewayError(f"internal error in the gateway (request id {rid})")


def _request_id(request: Request) -> str:
    return client_request_id(request.headers.get("x-request-id")) or request.app.state.ids.new()
