"""One suite run against every translating adapter: the behaviours every provider must give an
OpenAI client. An unsupported capability is an explicit opt-out in SUPPORTS."""

from __future__ import annotations

import inspect
import types
from typing import Any

import orjson
import pytest

from llmproxy.errors import GatewayError, InvalidRequest, UpstreamAuthError, UpstreamRejected
from llmproxy.providers import ADAPTERS
from llmproxy.providers.base import Adapter
from tests.fakes import anthropic_server, gemini_server
from tests.providers.conftest import creds, entry, merge_tool_calls, relay

MODELS = {"anthropic": "claude-sonnet-4-5-20250929", "gemini": "gemini-3-flash-preview"}
SUPPORTS = {"anthropic": {"n>1": False, "seed": False}, "gemini": {"n>1": True, "seed": True}}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]


def history(call_id: str = "call_abc123") -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": '{"temp": 21}'},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Thanks, and?"},
    ]


VALIDATOR = anthropic_server.Validator()  # built once: the pydantic adapters take a second to compile


def accepted(provider: str, body: dict[str, Any], model: str) -> None:
    """The fake server's verdict, i.e. what the real API would say."""
    if provider == "anthropic":
        problem = VALIDATOR.check(body)
        assert problem is None, problem
    else:
        gemini_server.check(body, model)


def fake_answer(provider: str, body: dict[str, Any], model: str) -> dict[str, Any]:
    return anthropic_server.answer(body) if provider == "anthropic" else gemini_server.answer(body, model)


def fake_stream(provider: str, body: dict[str, Any], model: str) -> bytes:
    if provider == "anthropic":
        return b"".join(anthropic_server.events(anthropic_server.answer(body)))
    return b"".join(gemini_server.stream_chunks(gemini_server.answer(body, model)))


@pytest.fixture(params=["anthropic", "gemini"])
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


def build(provider: str, req: dict[str, Any], stream: bool = False) -> tuple[dict[str, Any], Any]:
    model = entry(provider, MODELS[provider])
    up = ADAPTERS[provider].build_request(req, model, creds(provider), stream=stream)
    return orjson.loads(up.body), up


def test_registered(provider: str) -> None:
    adapter = ADAPTERS[provider]
    assert adapter.NAME == provider and adapter.DEFAULT_BASE_URL.startswith("https://")


def test_plain_request_is_accepted_and_answer_translates(provider: str) -> None:
    req = {"model": "x", "messages": [{"role": "user", "content": "Hello"}], "temperature": 0.3, "stop": "END"}
    body, up = build(provider, req)
    accepted(provider, body, MODELS[provider])
    assert "test-key" in up.headers.values()
    completion = ADAPTERS[provider].parse_response(
        orjson.dumps(fake_answer(provider, body, MODELS[provider])), entry(provider, MODELS[provider])
    )
    assert completion["object"] == "chat.completion"
    choice = completion["choices"][0]
    assert choice["message"]["role"] == "assistant" and "Hello" in choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    u = completion["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] > 0


def test_tool_history_with_system_anywhere_is_accepted(provider: str) -> None:
    body, _ = build(provider, {"messages": history(), "tools": TOOLS})
    accepted(provider, body, MODELS[provider])


def test_tool_call_answer_becomes_openai_tool_calls(provider: str) -> None:
    req = {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": TOOLS, "tool_choice": "required"}
    body, _ = build(provider, req)
    accepted(provider, body, MODELS[provider])
    completion = ADAPTERS[provider].parse_response(
        orjson.dumps(fake_answer(provider, body, MODELS[provider])), entry(provider, MODELS[provider])
    )
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["id"] and call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert isinstance(orjson.loads(call["function"]["arguments"]), dict)


def test_tool_call_id_from_answer_is_accepted_on_the_next_turn(provider: str) -> None:
    """The id we hand out (Gemini's carries the thought signature) must be valid in the follow-up,
    for this provider and for the other one."""
    req = {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": TOOLS, "tool_choice": "required"}
    body, _ = build(provider, req)
    completion = ADAPTERS[provider].parse_response(
        orjson.dumps(fake_answer(provider, body, MODELS[provider])), entry(provider, MODELS[provider])
    )
    call = completion["choices"][0]["message"]["tool_calls"][0]
    follow = {"messages": history(call["id"]), "tools": TOOLS}
    for target in ("anthropic", "gemini"):
        body, _ = build(target, follow)
        accepted(target, body, MODELS[target])


def test_stream_gives_role_text_finish_usage_done(provider: str) -> None:
    req = {"messages": [{"role": "user", "content": "Hello there"}], "stream": True}
    body, _ = build(provider, req, stream=True)
    accepted(provider, body, MODELS[provider])
    payloads, state = relay(
        ADAPTERS[provider], fake_stream(provider, body, MODELS[provider]), entry(provider, MODELS[provider])
    )
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] and c["created"] and c["model"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "Hello there" in text
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert state.completed and state.finish_reason == "stop" and state.usage == chunks[-1]["usage"]


def test_stream_without_include_usage_has_no_usage_chunk(provider: str) -> None:
    body, _ = build(provider, {"messages": [{"role": "user", "content": "Hi"}]}, stream=True)
    payloads, state = relay(
        ADAPTERS[provider],
        fake_stream(provider, body, MODELS[provider]),
        entry(provider, MODELS[provider]),
        include_usage=False,
    )
    assert all(p == "[DONE]" or p["choices"] for p in payloads)
    assert state.usage is not None  # the gateway still learns it for accounting


def test_streamed_tool_calls_concatenate_to_valid_json(provider: str) -> None:
    req = {"messages": [{"role": "user", "content": "Weather?"}], "tools": TOOLS, "tool_choice": "required"}
    body, _ = build(provider, req, stream=True)
    payloads, state = relay(
        ADAPTERS[provider], fake_stream(provider, body, MODELS[provider]), entry(provider, MODELS[provider]), size=5
    )
    calls = merge_tool_calls([p for p in payloads if p != "[DONE]"])
    assert calls and all(c["id"] and c["name"] == "get_weather" for c in calls)
    assert all(isinstance(orjson.loads(c["arguments"]), dict) for c in calls)
    assert state.finish_reason == "tool_calls"


def test_stream_cut_short_ends_with_an_error_event(provider: str) -> None:
    body, _ = build(provider, {"messages": [{"role": "user", "content": "Hello there friend"}]}, stream=True)
    if provider == "anthropic":
        data = b"".join(anthropic_server.events(anthropic_server.answer(body), fail="cut-stream"))
    else:
        data = b"".join(gemini_server.stream_chunks(gemini_server.answer(body, MODELS[provider]), cut=True))
    payloads, state = relay(ADAPTERS[provider], data, entry(provider, MODELS[provider]))
    assert not state.completed
    assert "error" in payloads[-1] and payloads[-1]["error"]["type"] == "api_error"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_upstream_failures_are_retryable(provider: str, status: int) -> None:
    resp = (
        anthropic_server.error(status, "boom")
        if provider == "anthropic"
        else gemini_server.error(status, "UNAVAILABLE", "boom")
    )
    err = ADAPTERS[provider].map_error(status, resp.body, {"retry-after": "3"})
    assert isinstance(err, GatewayError) and err.retryable
    if status == 429:
        assert err.status == 429 and err.headers.get("retry-after") == "3"


def test_bad_request_keeps_provider_message_and_is_not_retryable(provider: str) -> None:
    resp = (
        anthropic_server.error(400, "messages: text content blocks must be non-empty")
        if provider == "anthropic"
        else gemini_server.error(400, "INVALID_ARGUMENT", "messages: text content blocks must be non-empty")
    )
    err = ADAPTERS[provider].map_error(400, resp.body, {})
    assert isinstance(err, UpstreamRejected) and not err.retryable and err.status == 400
    assert "text content blocks must be non-empty" in err.message


def test_auth_failure_is_the_gateways_problem(provider: str) -> None:
    err = ADAPTERS[provider].map_error(401, b'{"error": {"message": "bad key"}}', {})
    assert isinstance(err, UpstreamAuthError)


def test_n_greater_than_one(provider: str) -> None:
    req = {"messages": [{"role": "user", "content": "Hi"}], "n": 2}
    if not SUPPORTS[provider]["n>1"]:
        with pytest.raises(InvalidRequest) as info:
            build(provider, req)
        assert info.value.param == "n" and info.value.status == 400
        return
    body, _ = build(provider, req)
    accepted(provider, body, MODELS[provider])
    completion = ADAPTERS[provider].parse_response(
        orjson.dumps(fake_answer(provider, body, MODELS[provider])), entry(provider, MODELS[provider])
    )
    assert [c["index"] for c in completion["choices"]] == [0, 1]


def test_images_data_url_and_https_are_accepted(provider: str) -> None:
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
    req = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
                ],
            }
        ]
    }
    body, _ = build(provider, req)
    accepted(provider, body, MODELS[provider])


def test_json_schema_response_format(provider: str) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    req = {
        "messages": [{"role": "user", "content": "Extract"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
    }
    body, _ = build(provider, req)
    accepted(provider, body, MODELS[provider])
    completion = ADAPTERS[provider].parse_response(
        orjson.dumps(fake_answer(provider, body, MODELS[provider])), entry(provider, MODELS[provider])
    )
    assert "name" in orjson.loads(completion["choices"][0]["message"]["content"])


def test_reasoning_effort_is_accepted_and_reported(provider: str) -> None:
    req = {"messages": [{"role": "user", "content": "Think"}], "reasoning_effort": "high", "temperature": 0.2}
    body, _ = build(provider, req)
    accepted(provider, body, MODELS[provider])
    completion = ADAPTERS[provider].parse_response(
        orjson.dumps(fake_answer(provider, body, MODELS[provider])), entry(provider, MODELS[provider])
    )
    assert completion["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    assert completion["choices"][0]["message"].get("reasoning_content")


def test_unknown_and_unsupported_fields_never_reach_the_provider(provider: str) -> None:
    req = {
        "messages": [{"role": "user", "content": "Hi"}],
        "logprobs": True,
        "top_logprobs": 2,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.1,
        "logit_bias": {"1": 2},
        "store": True,
        "metadata": {"a": "b"},
        "service_tier": "auto",
        "user": "u-1",
        "seed": 7,
        "parallel_tool_calls": False,
        "prediction": {"type": "content", "content": "x"},
        "some_future_field": 1,
    }
    body, _ = build(provider, req)
    accepted(provider, body, MODELS[provider])


# The adapter Protocol, checked structurally on every registered module: each callable the transport
# calls is there, with the Protocol's parameters (names, kinds, which have defaults), and each
# constant has its type.
PROTOCOL_CALLABLES = sorted(
    name for name, value in vars(Adapter).items() if inspect.isfunction(value) and not name.startswith("_")
)
PROTOCOL_CONSTANTS = {"NAME": str, "DEFAULT_BASE_URL": str, "RELAYS_ANSWER": bool}


def contract_problems(module: Any) -> list[str]:
    problems = [
        f"{name}: missing or not a {kind.__name__}"
        for name, kind in PROTOCOL_CONSTANTS.items()
        if not isinstance(getattr(module, name, None), kind)
    ]
    for name in PROTOCOL_CALLABLES:
        func = getattr(module, name, None)
        if not callable(func):
            problems.append(f"{name}: missing")
            continue
        wanted = list(inspect.signature(getattr(Adapter, name)).parameters.values())[1:]  # without self
        found = list(inspect.signature(func).parameters.values())
        shape = [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in wanted]
        if [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in found] != shape:
            problems.append(f"{name}{inspect.signature(func)} does not match the Protocol's {shape}")
    return problems


def test_protocol_members_are_the_ones_the_transport_calls() -> None:
    assert set(PROTOCOL_CALLABLES) == {"build_request", "parse_response", "relay_stream", "map_error"}
    assert set(PROTOCOL_CONSTANTS) == set(Adapter.__annotations__)


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_every_registered_adapter_satisfies_the_protocol(kind: str) -> None:
    assert contract_problems(ADAPTERS[kind]) == []


def test_the_contract_check_catches_a_module_that_breaks_it() -> None:
    broken = types.ModuleType("broken")
    for name in PROTOCOL_CALLABLES:
        setattr(broken, name, getattr(ADAPTERS["openai"], name))
    broken.NAME, broken.DEFAULT_BASE_URL = "broken", "https://example.invalid"
    broken.parse_response = lambda body: {}  # type: ignore[attr-defined]  # the model parameter is missing
    problems = contract_problems(broken)
    assert [p.split("(")[0].split(":")[0] for p in problems] == ["RELAYS_ANSWER", "parse_response"], problems
