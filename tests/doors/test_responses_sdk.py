"""POST /v1/responses (and retrieve, delete, input_items) driven by the official openai SDK against
an OpenAI, a Claude and a Gemini model behind the gateway (fake upstreams on loopback)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import orjson
import pytest
from pydantic import BaseModel

from llmproxy.config import RouterSettings
from tests.doors.conftest import CLAUDE, GEMINI, GPT, MASTER, MODELS
from tests.fakes.anthropic_server import sample

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    },
}
TIME = {
    "type": "function",
    "name": "get_time",
    "description": "Local time of a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
ECHO = {GPT: "echo: ", CLAUDE: "You said: ", GEMINI: "You said: "}


class City(BaseModel):
    name: str
    population: int
    coastal: bool


@pytest.fixture
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway_url + "/v1", api_key=MASTER, max_retries=0)


def _upstream_requests(model: str, upstreams: dict[str, Any], openai_upstream: Any) -> list[dict[str, Any]]:
    if model == GPT:
        return openai_upstream[1].requests
    return upstreams["anthropic" if model == CLAUDE else "gemini"][1].requests


@pytest.mark.parametrize("model", MODELS)
def test_create_answers_a_response(client: openai.OpenAI, model: str) -> None:
    raw = client.responses.with_raw_response.create(
        model=model, input="hello there", instructions="Be brief.", metadata={"ticket": "42"}, max_output_tokens=256
    )
    r = raw.parse()
    assert r.object == "response" and r.status == "completed" and r.id.startswith("resp_")
    assert r.output_text == ECHO[model] + "hello there"
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.instructions == "Be brief." and r.max_output_tokens == 256 and r.store is True
    assert r.metadata == {"ticket": "42"} or model == GPT  # OpenAI echoes its own; the fake echoes too
    assert float(raw.headers["x-llmproxy-cost-usd"]) > 0
    assert raw.headers["x-llmproxy-provider"] == {GPT: "openai", CLAUDE: "anthropic", GEMINI: "gemini"}[model]


def test_openai_gets_the_clients_bytes(gateway_url: str, openai_upstream: Any) -> None:
    body = orjson.dumps(
        {
            "model": GPT,
            "input": "hi",
            "include": ["reasoning.encrypted_content"],
            "store": True,
            "truncation": "auto",
            "reasoning": {"effort": "low"},
        }
    )
    r = httpx.post(
        gateway_url + "/v1/responses",
        content=body,
        headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert orjson.dumps(openai_upstream[1].requests[-1]) == body
    assert r.json()["output"][0]["type"] == "reasoning"  # OpenAI's answer, as it sent it
    assert r.json()["usage"]["output_tokens_details"]["reasoning_tokens"] == 3


def test_unknown_fields_reach_openai_which_refuses_them(gateway_url: str, openai_upstream: Any) -> None:
    r = httpx.post(
        gateway_url + "/v1/responses",
        json={"model": GPT, "input": "hi", "not_a_field": 1},
        headers={"authorization": f"Bearer {MASTER}"},
    )
    assert r.status_code == 400 and "not_a_field" in r.json()["error"]["message"]
    assert openai_upstream[1].requests[-1]["not_a_field"] == 1


@pytest.mark.parametrize("model", MODELS)
def test_stream_sends_the_event_sequence(client: openai.OpenAI, model: str) -> None:
    kinds: list[str] = []
    numbers: list[int] = []
    with client.responses.stream(model=model, input="one two three four") as stream:
        for event in stream:
            kinds.append(event.type)
            numbers.append(event.sequence_number)
        final = stream.get_final_response()
    assert final.output_text == ECHO[model] + "one two three four"
    assert numbers == list(range(len(numbers)))
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    opened = kinds.index("response.content_part.added")  # (after the reasoning item of a reasoning model)
    assert kinds[opened - 1] == "response.output_item.added" and kinds[opened + 1] == "response.output_text.delta"
    assert kinds[-4:-1] == ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert kinds.count("response.output_text.delta") >= 2
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_function_tool_round_trip(
    client: openai.OpenAI, model: str, streamed: bool, upstreams: dict[str, Any], openai_upstream: Any
) -> None:
    first: Any
    if streamed:
        deltas: dict[str, str] = {}
        with client.responses.stream(model=model, input="Weather and time in Paris?", tools=[WEATHER, TIME]) as s:
            for event in s:
                if event.type == "response.function_call_arguments.delta":
                    deltas[event.item_id] = deltas.get(event.item_id, "") + event.delta
            first = s.get_final_response()
    else:
        first = client.responses.create(model=model, input="Weather and time in Paris?", tools=[WEATHER, TIME])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert [orjson.loads(c.arguments) for c in calls] == [sample(WEATHER["parameters"]), sample(TIME["parameters"])]
    if streamed:
        assert sorted(deltas.values()) == sorted(c.arguments for c in calls)
    outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": f"{c.name}: fine"} for c in calls]
    history = [
        {"role": "user", "content": "Weather and time in Paris?"},
        *[c.model_dump(exclude_none=True) for c in calls],
        *outputs,
    ]
    second = client.responses.create(model=model, tools=[WEATHER, TIME], input=history)
    assert second.output_text and not [i for i in second.output if i.type == "function_call"]
    sent = _upstream_requests(model, upstreams, openai_upstream)[-1]
    assert "get_weather: fine" in orjson.dumps(sent).decode()  # the results reached the provider


@pytest.mark.parametrize("model", MODELS)
def test_parse_with_a_pydantic_model(client: openai.OpenAI, model: str) -> None:
    parsed = client.responses.parse(model=model, input="A coastal city?", text_format=City)
    city = parsed.output_parsed
    assert isinstance(city, City) and city.name == "Paris" and city.population == 3


@pytest.mark.parametrize(("first", "second"), [(GPT, CLAUDE), (CLAUDE, GEMINI), (GEMINI, GPT)])
def test_previous_response_id_across_providers(
    client: openai.OpenAI, first: str, second: str, upstreams: dict[str, Any], openai_upstream: Any
) -> None:
    one = client.responses.create(model=first, input="My name is Ada.", instructions="Remember names.")
    two = client.responses.create(model=second, input="What is my name?", previous_response_id=one.id)
    assert two.previous_response_id == one.id and two.output_text == ECHO[second] + "What is my name?"
    sent = orjson.dumps(_upstream_requests(second, upstreams, openai_upstream)[-1]).decode()
    assert "My name is Ada." in sent and one.output_text in sent  # the first turn, both sides of it
    assert "Remember names." not in sent  # instructions do not carry over
    items = client.responses.input_items.list(two.id, order="asc")
    texts = [i.content[0].text for i in items.data if i.type == "message"]
    assert texts == ["My name is Ada.", one.output_text, "What is my name?"]
    # a third turn streamed on top of the second
    with client.responses.stream(model=first, input="And again?", previous_response_id=two.id) as stream:
        three = stream.get_final_response()
    assert three.output_text == ECHO[first] + "And again?"
    assert two.output_text in orjson.dumps(_upstream_requests(first, upstreams, openai_upstream)[-1]).decode()


def test_previous_response_served_after_a_fallback(door_gateway: Any, upstreams: dict[str, Any]) -> None:
    url = door_gateway(router=RouterSettings(fallbacks={"openai/fail-503": (CLAUDE,)}))
    client = openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
    raw = client.responses.with_raw_response.create(model="openai/fail-503", input="My name is Ada.")
    assert raw.headers["x-llmproxy-provider"] == "anthropic"
    one = raw.parse()
    two = client.responses.create(model=GEMINI, input="Name?", previous_response_id=one.id)
    assert two.output_text == "You said: Name?"
    assert "My name is Ada." in orjson.dumps(upstreams["gemini"][1].requests[-1]).decode()


@pytest.mark.parametrize("model", MODELS)
def test_retrieve_and_delete(client: openai.OpenAI, model: str) -> None:
    made = client.responses.create(model=model, input="keep me")
    got = client.responses.retrieve(made.id)
    assert got.model_dump() == made.model_dump()  # every field, though a translated one is stored without its defaults
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=model, input="again", previous_response_id=made.id)


def test_streamed_response_is_stored_before_the_stream_ends(client: openai.OpenAI) -> None:
    with client.responses.stream(model=CLAUDE, input="first") as stream:
        for event in stream:
            if event.type == "response.completed":
                follow = client.responses.create(model=GEMINI, input="next", previous_response_id=event.response.id)
                assert follow.output_text == "You said: next"


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    made = client.responses.create(model=CLAUDE, input="forget me", store=False)
    assert made.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=CLAUDE, input="x", previous_response_id=made.id)


def test_a_key_never_reads_another_keys_responses(gateway_url: str) -> None:
    def new_key(name: str) -> openai.OpenAI:
        r = httpx.post(gateway_url + "/admin/keys", json={"name": name}, headers={"authorization": f"Bearer {MASTER}"})
        assert r.status_code == 201, r.text
        return openai.OpenAI(base_url=gateway_url + "/v1", api_key=r.json()["key"], max_retries=0)

    alice, bob = new_key("alice"), new_key("bob")
    made = alice.responses.create(model=GEMINI, input="alice's secret")
    assert alice.responses.retrieve(made.id).id == made.id
    for attempt in (
        lambda: bob.responses.retrieve(made.id),
        lambda: bob.responses.delete(made.id),
        lambda: bob.responses.input_items.list(made.id),
        lambda: bob.responses.create(model=GEMINI, input="x", previous_response_id=made.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert alice.responses.retrieve(made.id).id == made.id  # bob's delete deleted nothing


def test_input_items_pages(client: openai.OpenAI) -> None:
    made = client.responses.create(model=GEMINI, input=[{"role": "user", "content": f"line {i}"} for i in range(5)])
    page = client.responses.input_items.list(made.id, limit=2)
    assert [i.content[0].text for i in page.data] == ["line 4", "line 3"] and page.has_more
    rest = client.responses.input_items.list(made.id, limit=10, after=page.data[-1].id)
    assert [i.content[0].text for i in rest.data] == ["line 2", "line 1", "line 0"] and not rest.has_more
    assert all(i.id for i in rest.data)


def test_stored_responses_survive_a_restart(door_gateway: Any, tmp_path: Any) -> None:
    url = door_gateway()
    client = openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
    made = client.responses.create(model=CLAUDE, input="durable")
    time.sleep(0.5)  # the writer's interval
    again = openai.OpenAI(base_url=door_gateway() + "/v1", api_key=MASTER, max_retries=0)
    assert again.responses.retrieve(made.id).output_text == "You said: durable"
