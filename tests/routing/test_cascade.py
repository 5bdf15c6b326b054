"""auto:cascade through a real gateway under uvicorn, with the openai SDK, in front of a fake upstream
whose cheaper models answer badly on purpose (tests/fakes/flawed_openai.py).

The classifier is replaced by an all-zero weights file (uniform probabilities: never confident), so
every request is one the classifier is unsure about and the cascade applies; its offsets pick the
unsure label.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import openai
import orjson
import pytest

from llmproxy.classifier import model as classifier_model
from llmproxy.classifier.features import DIM, N_DENSE
from llmproxy.config import RouterSettings
from llmproxy.breakers import Health
from llmproxy.registry import load_registry
from llmproxy.router import cascade_tiers, choose
from tests.conftest import REPO, base_settings
from tests.fakes.flawed_openai import USAGE, FlawedState, create_app
from tests.fakes.serve import ServerThread

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_order",
        "description": "Look up an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}
MSG = [{"role": "user", "content": "Where is my order A-1?"}]


def unsure_weights(path: Path, label: str) -> Path:
    """A weights file that is never confident and whose decision is `label`."""
    offsets = [0.1 if c == label else 0.0 for c in classifier_model.CLASSES]
    path.write_bytes(
        orjson.dumps(
            {
                "format": classifier_model.FORMAT,
                "classes": list(classifier_model.CLASSES),
                "dim": DIM,
                "n_dense": N_DENSE,
                "offsets": offsets,
                "min_prob": 0.5,
                "min_margin": 0.12,
                "weights": classifier_model.encode_weights([[0.0] * DIM for _ in classifier_model.CLASSES]),
            }
        )
    )
    return path


@pytest.fixture
def flawed() -> Iterator[tuple[str, FlawedState]]:
    state = FlawedState()
    with ServerThread(create_app(state)) as server:
        yield server.url + "/v1", state


@pytest.fixture
def cascade_gateway(
    gateway_factory: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flawed: tuple[str, FlawedState],
) -> Callable[[str], tuple[str, str, str]]:
    """Start a gateway whose classifier is unsure with label `label`; returns (base URL, first model,
    escalation model) as the router picks them."""

    def start(label: str) -> tuple[str, str, str]:
        monkeypatch.setattr(classifier_model, "DEFAULT_WEIGHTS", unsure_weights(tmp_path / f"w-{label}.json", label))
        settings = replace(base_settings(tmp_path, flawed[0]), router=RouterSettings())
        registry = load_registry(REPO / "registry" / "models.json")
        first, then = cascade_tiers(label)
        body = {"model": "auto", "messages": MSG}
        cheap = choose(body, registry, settings, Health(), strategy="cost", label=first)[0][1]
        strong = [
            c[1]
            for c in choose(body, registry, settings, Health(), strategy="cost", label=then)
            if (c[1].quality or 0) > (cheap.quality or 0)
        ][0]
        return gateway_factory(settings=settings), cheap.provider_model, strong.provider_model

    return start


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)


def usage_rows(tmp_path: Path) -> list[tuple]:
    time.sleep(0.3)  # the recorder writes in batches every 50 ms in tests
    db = sqlite3.connect(tmp_path / "data" / "llmproxy.db")
    try:
        return db.execute(
            "SELECT model, strategy, prompt_tokens, completion_tokens, cost_usd, attempts, status "
            "FROM usage ORDER BY id"
        ).fetchall()
    finally:
        db.close()


def test_good_cheap_answer_is_accepted(cascade_gateway, flawed) -> None:
    base, cheap, strong = cascade_gateway("simple")
    raw = client(base).chat.completions.with_raw_response.create(model="auto:cascade", messages=MSG)
    assert raw.headers["x-llmproxy-cascade"] == f"accepted; first={raw.headers['x-llmproxy-model']}"
    assert raw.headers["x-llmproxy-strategy"] == "cascade"
    assert [r["model"] for r in flawed[1].requests] == [cheap]
    assert raw.parse().choices[0].message.content == f"A good answer from {cheap}."
    assert "auto:cascade" in {m.id for m in client(base).models.list()}


@pytest.mark.parametrize(
    "flaw, extra",
    [
        ("length", {"max_tokens": 5}),
        ("empty", {}),
        ("refusal", {}),
        ("bad_json", {"response_format": {"type": "json_object"}}),
        ("schema", {"response_format": {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA}}}),
        ("bad_tool", {"tools": [TOOL]}),
        ("error", {}),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_bad_cheap_answer_escalates_in_the_same_request(
    cascade_gateway, flawed, tmp_path: Path, flaw: str, extra: dict, stream: bool
) -> None:
    base, cheap, strong = cascade_gateway("simple")
    flawed[1].flaws[cheap] = flaw
    if flaw == "error":  # the cheaper tier's own fallbacks fail too, so the whole tier failed
        from tests.fakes.openai_server import MODELS

        flawed[1].flaws.update({m: "error" for m in MODELS if m != strong})
    sdk = client(base)
    if stream:
        with sdk.chat.completions.with_streaming_response.create(
            model="auto:cascade", messages=MSG, stream=True, stream_options={"include_usage": True}, **extra
        ) as r:
            header = r.headers["x-llmproxy-cascade"]
            chunks = list(r.parse())
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or ())]
        assert header.startswith("held; escalated")
    else:
        raw = sdk.chat.completions.with_raw_response.create(model="auto:cascade", messages=MSG, **extra)
        header, message = raw.headers["x-llmproxy-cascade"], raw.parse().choices[0].message
        text, calls = message.content or "", message.tool_calls or []
        assert header.startswith("escalated") and raw.headers["x-llmproxy-model"].endswith(strong)
    reason = {"bad_json": "invalid_json", "schema": "invalid_json", "bad_tool": "invalid_tool_arguments"}.get(
        flaw, flaw
    )
    assert f"reason={reason}; first={cheap};" in header
    asked = [r["model"] for r in flawed[1].requests]
    assert asked[0] == cheap and asked[-1] == strong and (flaw == "error" or len(asked) == 2)
    if "tools" in extra:
        assert calls
    elif "response_format" in extra:
        assert orjson.loads(text) is not None
    else:
        assert text == f"A good answer from {strong}."
    ((model, strategy, prompt, completion, cost, attempts, status),) = usage_rows(tmp_path)
    assert strategy == "cascade" and status == 200 and model.endswith(strong)
    assert attempts == len(asked)
    tokens_first = 0 if flaw == "error" else 1
    assert prompt == USAGE["prompt_tokens"] * (1 + tokens_first)
    assert completion == USAGE["completion_tokens"] * (1 + tokens_first)
    assert cost > 0


def test_cost_counts_both_attempts(cascade_gateway, flawed, tmp_path: Path) -> None:
    base, cheap, strong = cascade_gateway("simple")
    flawed[1].flaws[cheap] = "refusal"
    raw = client(base).chat.completions.with_raw_response.create(model="auto:cascade", messages=MSG)
    first_cost = float(raw.headers["x-llmproxy-cascade"].rsplit("first_cost_usd=", 1)[1])
    total = float(raw.headers["x-llmproxy-cost-usd"])
    assert 0 < first_cost < total
    ((_, _, _, _, recorded, _, _),) = usage_rows(tmp_path)
    assert recorded == pytest.approx(total, rel=1e-6)


def test_confident_or_hinted_requests_do_not_cascade(cascade_gateway, flawed) -> None:
    base, cheap, strong = cascade_gateway("medium")
    raw = client(base).chat.completions.with_raw_response.create(
        model="auto:cascade", messages=MSG, extra_headers={"x-llmproxy-complexity": "complex"}
    )
    assert "x-llmproxy-cascade" not in raw.headers
    assert raw.headers["x-llmproxy-complexity"] == "complex"
    plain = client(base).chat.completions.with_raw_response.create(model="auto", messages=MSG)
    assert "x-llmproxy-cascade" not in plain.headers


def test_caller_errors_are_not_escalated(cascade_gateway, flawed) -> None:
    base, cheap, strong = cascade_gateway("simple")
    with pytest.raises(openai.BadRequestError) as err:
        client(base).chat.completions.create(
            model="auto:cascade", messages=MSG, extra_headers={"x-llmproxy-complexity": "hard"}
        )
    assert err.value.body["param"] == "x-llmproxy-complexity"
    assert flawed[1].requests == []


def test_added_latency_of_an_accepted_cascade(cascade_gateway, flawed, capsys: pytest.CaptureFixture[str]) -> None:
    """The gateway's own time (x-llmproxy-overhead-ms) with the cascade's checks against plain auto, and the
    time a held stream waits before its first byte (the whole cheap answer)."""
    base, cheap, strong = cascade_gateway("simple")
    sdk = client(base)
    body = {"messages": MSG, "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA}}}

    def overhead(model: str) -> float:
        raw = sdk.chat.completions.with_raw_response.create(model=model, **body)
        return float(raw.headers["x-llmproxy-overhead-ms"])

    for _ in range(5):
        overhead("auto:cascade"), overhead("auto")
    cascade = statistics.median(overhead("auto:cascade") for _ in range(40))
    plain = statistics.median(overhead("auto") for _ in range(40))
    with capsys.disabled():
        print(f"\n  gateway overhead, median of 40: auto {plain:.3f} ms, auto:cascade (accepted) {cascade:.3f} ms")
    assert cascade < plain + 2.0


def test_a_held_stream_waits_for_the_whole_cheap_answer(
    cascade_gateway, flawed, capsys: pytest.CaptureFixture[str]
) -> None:
    """The price of holding: the client's first content arrives when the cheaper model has finished."""
    base, cheap, strong = cascade_gateway("simple")
    flawed[1].chunk_delay_s = 0.05  # the good answer is 4 content events: ~0.2 s to generate
    sdk = client(base)

    def first_content_s(model: str) -> tuple[float, float, str]:
        started = time.perf_counter()
        first = None
        with sdk.chat.completions.with_streaming_response.create(model=model, messages=MSG, stream=True) as r:
            header = r.headers.get("x-llmproxy-cascade", "")
            for chunk in r.parse():
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
        return first or 0.0, time.perf_counter() - started, header

    plain_first, plain_total, _ = first_content_s("auto")
    held_first, held_total, header = first_content_s("auto:cascade")
    with capsys.disabled():
        print(
            f"\n  stream, first content / whole answer: auto {plain_first * 1000:.0f} / {plain_total * 1000:.0f} ms, "
            f"auto:cascade held {held_first * 1000:.0f} / {held_total * 1000:.0f} ms"
        )
    assert header.startswith("held; accepted")
    assert plain_first < 0.12  # relayed live: the first event after one delay
    assert held_first >= 0.18  # held: after the last one
    assert held_total < plain_total + 0.15  # holding adds the wait, not a second generation
