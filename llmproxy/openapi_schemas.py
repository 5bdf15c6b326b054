"""The body schemas of the OpenAPI document (#/components/schemas): what each route's request body
accepts (required fields, types and bounds the handlers check) and the shape of its answer. Data only;
openapi.py assembles the paths, parameters and responses around them. Bodies keep additionalProperties
open where the route passes unknown fields on (chat completions) and closed where it refuses them (admin)."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, str]:
    """A reference to one of the schemas below."""
    return {"$ref": f"#/components/schemas/{name}"}


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
            "messages": {"type": "array", "minItems": 1, "items": ref("Message")},
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


# Anthropic's Messages API, served at /v1/messages in Anthropic's own shapes (errors included).
_ANTHROPIC_MESSAGES = {"type": "array", "minItems": 1, "items": ref("AnthropicMessage")}
_SYSTEM = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}
MESSAGES_SCHEMAS: dict[str, Any] = {
    "AnthropicMessage": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "array",
                        "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
                    },
                ]
            },
        },
    },
    "MessagesRequest": {
        "type": "object",
        "required": ["model", "max_tokens", "messages"],
        "properties": {
            "model": MODEL_NAME,
            "max_tokens": {"type": "integer", "minimum": 1},
            "messages": _ANTHROPIC_MESSAGES,
            "system": _SYSTEM,
            "stream": {"type": "boolean"},
            "temperature": {"type": "number"},
            "top_p": {"type": "number"},
            "top_k": {"type": "integer"},
            "stop_sequences": {"type": "array", "items": {"type": "string"}},
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {"type": "object"},
            "thinking": {"type": "object"},
            "metadata": {"type": "object"},
        },
    },
    "CountTokensRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": MODEL_NAME,
            "messages": _ANTHROPIC_MESSAGES,
            "system": _SYSTEM,
            "tools": {"type": "array", "items": {"type": "object"}},
        },
    },
    "MessageAnswer": {
        "type": "object",
        "required": ["id", "type", "role", "content", "model", "usage"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string", "enum": ["message"]},
            "role": {"type": "string", "enum": ["assistant"]},
            "content": {"type": "array", "items": {"type": "object"}},
            "model": {"type": "string"},
            "stop_reason": {"type": "string", "nullable": True},
            "usage": {"type": "object"},
        },
    },
    "TokenCount": {
        "type": "object",
        "required": ["input_tokens"],
        "properties": {"input_tokens": {"type": "integer", "minimum": 0}},
    },
    "AnthropicError": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"type": "string", "enum": ["error"]},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
