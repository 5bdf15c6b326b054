"""The OpenAPI 3.0 document of the gateway's own routes (/v1, /admin, health), served at
/openapi.json and fuzzed by tests/fuzz. Written by hand, to say what each route accepts: required
fields, types and bounds the handlers check. Bodies keep additionalProperties open where the route
passes unknown fields on (chat completions) and closed where it refuses them (admin)."""

from __future__ import annotations

from typing import Any

from . import __version__

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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
TOKENS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
MODEL_NAME = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[ -~]+$"}
# POST /v1/embeddings and /v1/completions (doors/embeddings.py, doors/completions.py check the same)
_LEGACY_SCHEMAS: dict[str, Any] = {
    "EmbeddingRequest": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": MODEL_NAME,
            "input": {
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                    TOKENS,
                    {"type": "array", "minItems": 1, "items": TOKENS},
                ]
            },
            "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            "dimensions": {"type": "integer", "minimum": 1},
            "user": {"type": "string"},
        },
    },
    "EmbeddingList": {
        "type": "object",
        "required": ["object", "data", "model", "usage"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array"},
            "model": {"type": "string"},
            "usage": {"type": "object"},
        },
    },
    "CompletionRequest": {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            "model": MODEL_NAME,
            "prompt": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    TOKENS,
                    {"type": "array", "minItems": 1, "items": TOKENS},
                ]
            },
            "max_tokens": {"type": "integer", "minimum": 1},
            "n": {"type": "integer", "minimum": 1, "maximum": 128},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
            "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
            "logprobs": {"type": "integer", "minimum": 0, "maximum": 5},
            "best_of": {"type": "integer", "minimum": 0, "maximum": 20},
            "echo": {"type": "boolean"},
            "stream": {"type": "boolean"},
            "suffix": {"type": "string"},
            "stop": {"oneOf": [{"type": "string"}, {"type": "array", "maxItems": 4, "items": {"type": "string"}}]},
            "seed": {"type": "integer"},
            "user": {"type": "string"},
            "logit_bias": {"type": "object"},
        },
    },
    "TextCompletion": {
        "type": "object",
        "required": ["id", "object", "choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["text_completion"]},
            "choices": {"type": "array"},
            "usage": {"type": "object"},
        },
    },
}
LIST: dict[str, Any] = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"type": "string", "enum": ["list"]}, "data": {"type": "array"}},
}
NAME = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"^[A-Za-z0-9._@-]+$"}
MODELS = {"type": "array", "nullable": True, "items": {"type": "string", "minLength": 1}}
POSITIVE = {"type": "integer", "minimum": 1, "nullable": True}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "additionalProperties": False,
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": "string", "nullable": True},
                    "code": {"type": "string", "nullable": True},
                },
            }
        },
    },
    "Message": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
            "content": {
                "nullable": True,
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["type"],
                            "properties": {"type": {"type": "string"}, "text": {"type": "string"}},
                        },
                    },
                ],
            },
            "name": {"type": "string"},
            "tool_call_id": {"type": "string"},
            "tool_calls": {"type": "array"},
        },
    },
    "ChatRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[ -~]+$"},
            "messages": {"type": "array", "minItems": 1, "items": _ref("Message")},
            "stream": {"type": "boolean"},
            "stream_options": {"type": "object"},
            "temperature": {"type": "number"},
            "top_p": {"type": "number"},
            "frequency_penalty": {"type": "number"},
            "presence_penalty": {"type": "number"},
            "seed": {"type": "integer"},
            "top_logprobs": {"type": "integer"},
            "max_tokens": {"type": "integer", "minimum": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
            "n": {"type": "integer", "minimum": 1},
            "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
            "response_format": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
            "user": {"type": "string"},
        },
    },
    "ChatCompletion": {
        "type": "object",
        "required": ["id", "object", "choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string"},
            "choices": {"type": "array"},
            "usage": {"type": "object"},
        },
    },
    **_LEGACY_SCHEMAS,
    "Model": {
        "type": "object",
        "required": ["id", "object"],
        "properties": {"id": {"type": "string"}, "object": {"type": "string"}},
    },
    "Login": {
        "type": "object",
        "required": ["username", "password"],
        "additionalProperties": False,
        "properties": {
            "username": {"type": "string", "maxLength": 200},
            "password": {"type": "string", "maxLength": 200},
        },
    },
    "KeyFields": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "owner": {"type": "string", "minLength": 1, "maxLength": 200, "nullable": True},
            "role": {"type": "string", "enum": ["admin", "user"]},
            "models": MODELS,
            "rpm": POSITIVE,
            "tpm": POSITIVE,
            "budget_usd": {"type": "number", "minimum": 0, "nullable": True},
            "budget_period": {"type": "string", "enum": ["day", "month", "total"]},
            "expires_at": {"type": "number", "nullable": True},
            "expires_in_s": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
            "metadata": {"type": "object"},
            "strategy": {"type": "string", "enum": ["cost", "quality", "latency"], "nullable": True},
        },
    },
    "NewUser": {
        "type": "object",
        "required": ["name", "password"],
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "password": {"type": "string", "minLength": 1, "maxLength": 200},
            "role": {"type": "string", "enum": ["admin", "user"]},
        },
    },
    "UserChange": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "password": {"type": "string", "maxLength": 200},
            "role": {"type": "string", "enum": ["admin", "user"]},
            "disabled": {"type": "boolean"},
        },
    },
    "ProviderKey": {
        "type": "object",
        "required": ["api_key"],
        "additionalProperties": False,
        "properties": {"api_key": {"type": "string", "minLength": 1, "maxLength": 500}},
    },
    "Purge": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "all": {"type": "boolean"},
            "cache_key": {"type": "string", "minLength": 1},
            "key_id": {"type": "string", "minLength": 1},
            "user": {"type": "string", "minLength": 1},
            "model": {"type": "string", "minLength": 1},
        },
    },
    "Rotate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"grace_s": {"type": "number", "minimum": 0, "maximum": 2592000}},
    },
    "Rollback": {
        "type": "object",
        "required": ["version"],
        "additionalProperties": False,
        "properties": {"version": {"type": "integer", "minimum": 0}},
    },
    "Refresh": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"force": {"type": "boolean"}, "providers": {"type": "array", "items": {"type": "string"}}},
    },
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


# The OpenAI Responses API (llmproxy/doors/responses*.py): the fields the door checks; others pass on to OpenAI.
RESPONSES_SCHEMAS: dict[str, Any] = {
    "ResponsesRequest": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[ -~]+$"},
            "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
            "instructions": {"type": "string"},
            "previous_response_id": {"type": "string"},
            "stream": {"type": "boolean"},
            "store": {"type": "boolean"},
            "parallel_tool_calls": {"type": "boolean"},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "max_output_tokens": {"type": "integer", "minimum": 16},
            "tools": {"type": "array", "items": {"type": "object", "required": ["type"]}},
            "tool_choice": {"oneOf": [{"type": "string", "enum": ["none", "auto", "required"]}, {"type": "object"}]},
            "text": {"type": "object"},
            "reasoning": {"type": "object"},
            "user": {"type": "string"},
            "metadata": {"type": "object", "maxProperties": 16, "additionalProperties": {"type": "string"}},
        },
    },
    "Response": {
        "type": "object",
        "required": ["id", "object", "output"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["response"]},
            "output": {"type": "array"},
            "usage": {"type": "object", "nullable": True},
        },
    },
    "ResponseDeleted": {
        "type": "object",
        "required": ["id", "object", "deleted"],
        "properties": {"id": {"type": "string"}, "object": {"type": "string"}, "deleted": {"type": "boolean"}},
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
                {**_ok(_ref("Response")), **_errors(400, 401, 404)},
                parameters=stored,
            ),
            "delete": _op(
                "Delete a stored response", {**_ok(_ref("ResponseDeleted")), **_errors(401, 404)}, parameters=stored
            ),
        },
        "/v1/responses/{response_id}/input_items": {
            "get": _op(
                "The conversation a stored response answered",
                {**_ok(LIST), **_errors(400, 401, 404)},
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
            'Every error is {"error": {"message", "type", "param", "code"}}.',
        },
        "paths": {**_paths(), **_responses_paths()},
        "components": {
            "schemas": {**SCHEMAS, **RESPONSES_SCHEMAS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
