"""The OpenAPI 3.0 document of the gateway's own routes (/v1, /admin, health), served at
/openapi.json and fuzzed by tests/fuzz. Written by hand, to say what each route accepts: this module
assembles the paths, their parameters and responses; the bodies' schemas are in openapi_schemas.py."""

from __future__ import annotations

from typing import Any

from . import __version__
from .openapi_schemas import MESSAGES_SCHEMAS, RESPONSES_SCHEMAS, SCHEMAS
from .openapi_schemas import ref as _ref  # the paths below call it by its old local name

JSON = "application/json"


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "invalid request",
        401: "no or wrong credentials",
        403: "not allowed",
        404: "not found",
        405: "method not allowed",
        408: "the request came too slowly",
        409: "conflict",
        413: "body too large",
        415: "body is not JSON",
        429: "rate limited or over budget",
        431: "headers too large",
        499: "client went away",
        502: "upstream failed",
        503: "overloaded or not ready",
        504: "upstream timed out",
    }
    edge = (403, 408, 413, 415, 431, 503)  # the guard may answer any route with these
    return {
        str(s): {"description": reasons[s], "content": {JSON: {"schema": _ref("Error")}}}
        for s in sorted(set(statuses) | set(edge))
    }


def _ok(schema: dict[str, Any], status: int = 200, description: str = "ok") -> dict[str, Any]:
    return {str(status): {"description": description, "content": {JSON: {"schema": schema}}}}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _path_param(name: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 200}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    secured: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if parameters:
        op["parameters"] = parameters
    if not secured:
        op["security"] = []
    return op


OBJECT: dict[str, Any] = {"type": "object"}
LIST: dict[str, Any] = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"type": "string", "enum": ["list"]}, "data": {"type": "array"}},
}

TIME = {"type": "string", "maxLength": 40}
USAGE_PARAMS = [
    _query("since", TIME),
    _query("until", TIME),
    _query("days", {"type": "integer", "minimum": 1, "maximum": 36600}),
    _query("key_id", {"type": "string"}),
    _query("user", {"type": "string"}),
]


def _paths() -> dict[str, Any]:
    key_id = [_path_param("key_id")]
    user = [_path_param("name")]
    return {
        "/v1/chat/completions": {
            "post": _op(
                'Create a chat completion (OpenAI format; stream with "stream": true)',
                {**_ok(_ref("ChatCompletion")), **_errors(400, 401, 403, 404, 429, 499, 502, 504)},
                body=_body(_ref("ChatRequest")),
            )
        },
        "/v1/embeddings": {
            "post": _op(
                "Create embeddings (OpenAI format; float or base64)",
                {**_ok(_ref("EmbeddingList")), **_errors(400, 401, 403, 404, 429, 499, 502, 504)},
                body=_body(_ref("EmbeddingRequest")),
            )
        },
        "/v1/completions": {
            "post": _op(
                'Create a legacy text completion (OpenAI format; stream with "stream": true)',
                {**_ok(_ref("TextCompletion")), **_errors(400, 401, 403, 404, 429, 499, 502, 504)},
                body=_body(_ref("CompletionRequest")),
            )
        },
        "/v1/models": {"get": _op("List the models this caller may use", {**_ok(LIST), **_errors(401)})},
        "/v1/models/{model}": {
            "get": _op("One model", {**_ok(_ref("Model")), **_errors(401, 404)}, parameters=[_path_param("model")])
        },
        "/healthz": {"get": _op("Liveness", _ok(OBJECT), secured=False)},
        "/readyz": {"get": _op("Readiness (database, registry)", {**_ok(OBJECT), **_errors()}, secured=False)},
        "/openapi.json": {"get": _op("This document", _ok(OBJECT), secured=False)},
        "/admin/login": {
            "post": _op(
                "Trade a user name and password for an access token",
                {**_ok(OBJECT), **_errors(400, 401, 429)},
                body=_body(_ref("Login")),
                secured=False,
            )
        },
        "/admin/whoami": {"get": _op("Who is calling", {**_ok(OBJECT), **_errors(401)})},
        "/admin/info": {"get": _op("Version, registry, providers", {**_ok(OBJECT), **_errors(401)})},
        "/admin/keys": {
            "get": _op(
                "Keys the caller may manage",
                {**_ok(LIST), **_errors(401)},
                parameters=[_query("owner", {"type": "string"})],
            ),
            "post": _op(
                "Create a key (its value is shown once)",
                {**_ok(OBJECT, 201, "created"), **_errors(400, 401)},
                body=_body({"allOf": [_ref("KeyFields"), {"required": ["name"]}]}),
            ),
        },
        "/admin/keys/{key_id}": {
            "get": _op("One key", {**_ok(OBJECT), **_errors(401, 404)}, parameters=key_id),
            "patch": _op(
                "Change a key",
                {**_ok(OBJECT), **_errors(400, 401, 404)},
                parameters=key_id,
                body=_body(_ref("KeyFields"), required=False),
            ),
            "delete": _op("Revoke a key", {**_ok(OBJECT), **_errors(400, 401, 404)}, parameters=key_id),
        },
        "/admin/keys/{key_id}/rotate": {
            "post": _op(
                "New value; the old one works for grace_s",
                {**_ok(OBJECT), **_errors(400, 401, 404)},
                parameters=key_id,
                body=_body(_ref("Rotate"), required=False),
            )
        },
        "/admin/users": {
            "get": _op("Users", {**_ok(LIST), **_errors(401)}),
            "post": _op(
                "Create a user", {**_ok(OBJECT, 201, "created"), **_errors(400, 401)}, body=_body(_ref("NewUser"))
            ),
        },
        "/admin/users/{name}": {
            "patch": _op(
                "Change a user",
                {**_ok(OBJECT), **_errors(400, 401, 404)},
                parameters=user,
                body=_body(_ref("UserChange"), required=False),
            ),
            "delete": _op("Delete a user and revoke their keys", {**_ok(OBJECT), **_errors(401, 404)}, parameters=user),
        },
        "/admin/providers": {"get": _op("Providers and where their keys come from", {**_ok(LIST), **_errors(401)})},
        "/admin/providers/{name}": {
            "put": _op(
                "Store a provider key in the vault",
                {**_ok(OBJECT), **_errors(400, 401, 404)},
                parameters=[_path_param("name")],
                body=_body(_ref("ProviderKey")),
            ),
            "delete": _op(
                "Remove a provider key from the vault",
                {**_ok(OBJECT), **_errors(401, 404)},
                parameters=[_path_param("name")],
            ),
        },
        "/admin/audit": {
            "get": _op(
                "The audit log, newest first",
                {**_ok(LIST), **_errors(400, 401)},
                parameters=[
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    _query("since", {"type": "number"}),
                    _query("actor", {"type": "string"}),
                ],
            )
        },
        "/admin/usage": {
            "get": _op(
                "Usage and spend, grouped",
                {**_ok(OBJECT), **_errors(400, 401)},
                parameters=[
                    *USAGE_PARAMS,
                    _query(
                        "group_by",
                        {
                            "type": "string",
                            "pattern": "^(day|key|user|model|provider)(,(day|key|user|model|provider))*$",
                        },
                    ),
                    _query("format", {"type": "string", "enum": ["json"]}),
                ],
            )
        },
        "/admin/overview": {
            "get": _op(
                "The dashboard's numbers",
                {**_ok(OBJECT), **_errors(400, 401)},
                parameters=[
                    *USAGE_PARAMS,
                    _query("bucket_s", {"type": "integer", "minimum": 60, "maximum": 86400}),
                    _query("frontier", {"type": "string"}),
                ],
            )
        },
        "/admin/models": {"get": _op("Models with prices and quality", {**_ok(OBJECT), **_errors(401)})},
        "/admin/cache": {"get": _op("Cache numbers", {**_ok(OBJECT), **_errors(401)})},
        "/admin/cache/purge": {
            "post": _op("Purge cache entries", {**_ok(OBJECT), **_errors(400, 401)}, body=_body(_ref("Purge")))
        },
        "/admin/registry": {"get": _op("The registry in use", {**_ok(OBJECT), **_errors(401)})},
        "/admin/registry/refresh": {
            "post": _op(
                "Scrape the pricing pages now (reaches the internet)",
                {**_ok(OBJECT), **_errors(400, 401, 409)},
                body=_body(_ref("Refresh"), False),
            )
        },
        "/admin/registry/versions": {"get": _op("Registry history", {**_ok(OBJECT), **_errors(401)})},
        "/admin/registry/diff": {
            "get": _op(
                "Changes between two versions",
                {**_ok(OBJECT), **_errors(400, 401, 404)},
                parameters=[
                    {"name": "a", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 0}},
                    _query("b", {"type": "integer", "minimum": 0}),
                ],
            )
        },
        "/admin/registry/rollback": {
            "post": _op(
                "Make an old version current again",
                {**_ok(OBJECT), **_errors(400, 401, 404, 409)},
                body=_body(_ref("Rollback")),
            )
        },
    }


def _messages_paths() -> dict[str, Any]:
    """Anthropic's Messages API: its errors in Anthropic's shape, the key in x-api-key or as a bearer."""
    statuses = (400, 401, 403, 404, 408, 413, 415, 429, 431, 499, 502, 503, 504)
    reasons = {
        str(s): {"description": "error", "content": {JSON: {"schema": _ref("AnthropicError")}}} for s in statuses
    }
    either_key: list[dict[str, list[str]]] = [{"bearer": []}, {"anthropicKey": []}]

    def op(summary: str, answer: str, request: str) -> dict[str, Any]:
        return {**_op(summary, {**_ok(_ref(answer)), **reasons}, body=_body(_ref(request))), "security": either_key}

    return {
        "/v1/messages": {
            "post": op(
                'Create a message (Anthropic Messages API, any model; stream with "stream": true)',
                "MessageAnswer",
                "MessagesRequest",
            )
        },
        "/v1/messages/count_tokens": {
            "post": op(
                "Count a Messages request's input tokens (Anthropic's count for Claude, an estimate otherwise)",
                "TokenCount",
                "CountTokensRequest",
            )
        },
    }


def _responses_paths() -> dict[str, Any]:
    stored = [_path_param("response_id")]
    return {
        "/v1/responses": {
            "post": _op(
                'Create a model response (OpenAI Responses API; stream with "stream": true)',
                {**_ok(_ref("Response")), **_errors(400, 401, 403, 404, 429, 499, 502, 504)},
                body=_body(_ref("ResponsesRequest")),
            )
        },
        "/v1/responses/{response_id}": {
            "get": _op(
                "A stored response (the caller's own)",
                {**_ok(_ref("Response")), **_errors(400, 401, 404, 429)},
                parameters=stored,
            ),
            "delete": _op(
                "Delete a stored response",
                {**_ok(_ref("ResponseDeleted")), **_errors(401, 404, 429)},
                parameters=stored,
            ),
        },
        "/v1/responses/{response_id}/input_items": {
            "get": _op(
                "The conversation a stored response answered",
                {**_ok(LIST), **_errors(400, 401, 404, 429)},
                parameters=[
                    *stored,
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                    _query("order", {"type": "string", "enum": ["asc", "desc"]}),
                    _query("after", {"type": "string"}),
                    _query("before", {"type": "string"}),
                ],
            )
        },
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "llmproxy",
            "version": __version__,
            "description": "An OpenAI-compatible LLM gateway: /v1 for clients, /admin for operators. "
            'Every error is {"error": {"message", "type", "param", "code"}}, but on /v1/messages, '
            'which answers in Anthropic\'s shape: {"type": "error", "error": {"type", "message"}}.',
        },
        "paths": {**_paths(), **_responses_paths(), **_messages_paths()},
        "components": {
            "schemas": {**SCHEMAS, **RESPONSES_SCHEMAS, **MESSAGES_SCHEMAS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "anthropicKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        "security": [{"bearer": []}],
    }
