"""Classifier.load / classify: output shape, determinism, sanity, languages, long prompts, latency."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from llmproxy.classifier import Classifier, Complexity
from llmproxy.classifier.model import DEFAULT_WEIGHTS, FORMAT


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.load()


def user(text: str, **extra: object) -> dict:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


PROOF = (
    "Prove that every continuous function on a closed bounded interval is uniformly continuous. "
    "Then prove that the uniform limit of continuous functions is continuous, state every lemma you use, "
    "and give a counterexample showing that pointwise convergence is not enough. Be fully rigorous."
)


def test_weights_file_loads_by_default_and_by_path() -> None:
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 5_000_000
    a = Classifier.load()
    b = Classifier.load(DEFAULT_WEIGHTS)
    c = Classifier.load(str(DEFAULT_WEIGHTS))
    assert a.classify(user("hi")) == b.classify(user("hi")) == c.classify(user("hi"))


def test_load_rejects_a_foreign_file(tmp_path: Path) -> None:
    bad = tmp_path / "w.json"
    bad.write_bytes(orjson.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match=FORMAT):
        Classifier.load(bad)


def test_output_shape(clf: Classifier) -> None:
    for request in (user("hi"), user(PROOF), {"messages": []}, {}):
        result = clf.classify(request)
        assert isinstance(result, Complexity)
        assert result.label in ("simple", "medium", "complex")
        assert 0.0 <= result.score <= 1.0
        assert isinstance(result.confident, bool)


def test_deterministic_across_calls_and_loads(clf: Classifier) -> None:
    requests = [user("hello there"), user(PROOF), user("Escribe una función en Python que ordene una lista.")]
    first = [clf.classify(r) for r in requests]
    assert [clf.classify(r) for r in requests] == first
    assert [Classifier.load().classify(r) for r in requests] == first


def test_deterministic_across_processes() -> None:
    code = (
        "from llmproxy.classifier import Classifier; "
        "print(Classifier.load().classify({'messages': [{'role': 'user', 'content': 'Design a distributed queue'}]}))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=Path(__file__).parents[2],
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1


def test_greeting_is_simple_and_proof_is_not(clf: Classifier) -> None:
    greeting = clf.classify(user("hi! how are you?"))
    proof = clf.classify(user(PROOF))
    assert greeting.label == "simple"
    assert proof.label != "simple"
    assert proof.score > greeting.score


def test_spanish_requests_behave_like_english(clf: Classifier) -> None:
    hola = clf.classify(user("¡hola! ¿qué tal estás?"))
    demo = clf.classify(
        user(
            "Demuestra que hay infinitos números primos y generaliza la demostración "
            "a primos de la forma 4k+3, con todo rigor."
        )
    )
    design = clf.classify(
        user(
            "Diseña un sistema distribuido de pagos con consistencia fuerte entre regiones "
            "y explica cómo se recupera de particiones de red."
        )
    )
    assert hola.label == "simple"
    assert demo.label != "simple" and design.label != "simple"
    assert min(demo.score, design.score) > hola.score


def test_trivial_ask_on_a_long_document_is_not_complex(clf: Classifier) -> None:
    doc = "El equipo se reunió el martes para hablar de la próxima versión del producto. " * 400
    result = clf.classify(user(doc + "\n\nCorrige la errata de este texto."))
    assert result.label != "complex"


def test_request_shapes_are_accepted(clf: Classifier) -> None:
    request = {
        "model": "auto",
        "messages": [
            {"role": "developer", "content": "You are terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "1", "content": "{}"},
            {"role": "user", "content": [{"type": "text", "text": "thanks"}]},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "max_tokens": 100,
    }
    assert clf.classify(request).label in ("simple", "medium", "complex")
    assert clf.classify({"messages": "not a list", "tools": "nope", "max_tokens": "12"}).label


def test_100kb_prompt_is_fast(clf: Classifier) -> None:
    text = " ".join(f"word{i % 977} value {i}" for i in range(8000))[:100_000]
    request = user(text + "\n\nProve the claim above.")
    clf.classify(request)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        clf.classify(request)
        times.append(time.perf_counter() - t0)
    # The budget is p99 < 1 ms on an idle machine (bench/classifier_bench.py); tests share the CPU, so the
    # bound here is the median with headroom.
    assert sorted(times)[len(times) // 2] < 0.003


def test_runtime_needs_only_stdlib_and_orjson() -> None:
    code = (
        "import sys; from llmproxy.classifier import Classifier; "
        "Classifier.load().classify({'messages': [{'role': 'user', 'content': 'hi'}]}); "
        "bad = sorted(m for m in ('numpy', 'sklearn', 'scipy') if m in sys.modules); print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    ).stdout.strip()
    assert out == "[]"


def test_import_does_no_work() -> None:
    code = (
        "import builtins, io; opened = []; real = io.open\n"
        "def spy(*a, **k):\n    opened.append(a[0]); return real(*a, **k)\n"
        "builtins.open = io.open = spy\n"
        "import pathlib; pathlib.Path.read_bytes = lambda self: opened.append(str(self)) or b''\n"
        "import llmproxy.classifier, llmproxy.classifier.features, llmproxy.classifier.model\n"
        "print([p for p in opened if 'weights' in str(p)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    ).stdout.strip()
    assert out == "[]"
