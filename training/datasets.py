"""Training and evaluation rows: the public routing files, their fixed held-out split, synthetic chat and
the hand-written training requests.

The public routing files (written by others; see docs/classifier.md for their sources and licences) are
read from a folder given with --data or the LLMPROXY_ROUTING_DATA environment variable; without it,
training uses the project's own rows only. The split is a hash rule on the normalised prompt, applied
identically to both routing files, so a prompt that appears in both is on the same side in both (the
files overlap). Self-Instruct rows are evaluation-only (its authors' request) and never enter training.
The independent evaluation set (training/evalset/) is never read here.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from training.chatfile import read_dir
from training.synth import generate

DATA_ENV = "LLMPROXY_ROUTING_DATA"  # folder holding routing_eval.jsonl and needs_strong_routellm.jsonl
HANDWRITTEN_DIR = Path(__file__).with_name("handwritten")  # the project's hand-written training requests
HANDWRITTEN_VALID_PERCENT = 30  # of hand-written requests (by id hash) kept for validation, never fitted
HELDOUT_PERCENT = 30  # hash bucket < 30 -> held out, never trained on
VALID_PERCENT = 10  # buckets [30, 40) -> validation (decision thresholds), the rest -> fit
EVAL_ONLY_SOURCES = frozenset({"self-instruct-user"})
SYNTH_TRAIN = ("train", 9000, 1, "fit")  # (family, n, seed, part): bank A minus its validation templates
SYNTH_VALID = ("train", 1500, 2, "valid")  # bank A's validation templates (~1/5), for thresholds
SYNTH_HELDOUT = ("heldout", 1800, 7, "all")  # bank B: other templates, evaluation only
SYNTH_SAME_TEMPLATES = ("train", 1500, 99, "fit")  # fit templates, unseen seed: shows the template-recall gap

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Splits:
    fit: list[Row]
    valid: list[Row]
    heldout: list[Row]  # 3-class rows: routing_eval held-out + all self-instruct + synthetic bank B
    needs_strong_heldout: list[Row]  # binary rows with weak/strong outcomes


def prompt_key(prompt: str) -> str:
    return " ".join(prompt.split()).lower()


def bucket(prompt: str) -> int:
    """Fixed split bucket in [0, 100) from the normalised prompt text."""
    return int(hashlib.sha256(prompt_key(prompt).encode()).hexdigest()[:8], 16) % 100


def side(row: Row) -> str:
    """'heldout', 'valid' or 'fit' for a benchmark row."""
    if row.get("source") in EVAL_ONLY_SOURCES:
        return "heldout"
    b = bucket(row["prompt"])
    if b < HELDOUT_PERCENT:
        return "heldout"
    return "valid" if b < HELDOUT_PERCENT + VALID_PERCENT else "fit"


def chat(prompt: str) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}]}


def read_jsonl(path: Path) -> list[Row]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _mmlu_subject_stats(rows: list[Row]) -> dict[str, tuple[float, float]]:
    """(weak acc, strong acc) per MMLU subject, from fit-side rows only."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for r in rows:
        if r["source"] == "mmlu" and side(r) == "fit":
            a = acc[r["meta"]]
            a[0] += r["weak_score"]
            a[1] += r["strong_score"]
            a[2] += 1
    return {k: (w / n, s / n) for k, (w, s, n) in acc.items()}


def label_needs_strong(row: Row, subjects: dict[str, tuple[float, float]]) -> str | None:
    """3-class label for a needs_strong row by the same rules as routing_eval's README, or None."""
    w, s, src = row["weak_score"], row["strong_score"], row["source"]
    if src == "mt-bench":
        if w <= 7:
            return "complex"
        return "simple" if (w >= s or w == 10) else "medium"
    if not s:
        return None
    if not w:
        return "complex"
    if src == "gsm8k":
        steps = int(row["meta"].split("=")[1])
        return "simple" if steps <= 2 else "medium" if steps >= 4 else None
    weak_acc, strong_acc = subjects.get(row["meta"], (0.0, 0.0))
    if strong_acc < 0.8:
        return None
    return "simple" if weak_acc >= 0.85 else "medium" if weak_acc < 0.8 else None


def routing_data(arg: str | Path | None, environ: dict[str, str]) -> Path | None:
    """The public routing data folder from the command line or the environment, checked; None if unset."""
    value = arg or environ.get(DATA_ENV)
    if not value:
        return None
    folder = Path(value)
    if not (folder / "routing_eval.jsonl").is_file():
        raise SystemExit(f"{folder} holds no routing_eval.jsonl (set --data or {DATA_ENV} to the routing data folder)")
    return folder


def handwritten_side(row: Row) -> str:
    """'valid' or 'fit' for a hand-written training request, fixed by its id."""
    digest = int(hashlib.sha256(row["id"].encode()).hexdigest()[:8], 16) % 100
    return "valid" if digest < HANDWRITTEN_VALID_PERCENT else "fit"


def load_splits(data_dir: Path | None, handwritten_dir: Path = HANDWRITTEN_DIR) -> Splits:
    """Fit / validation / held-out rows. Without `data_dir`, the benchmark rows are left out."""
    fit: list[Row] = []
    valid: list[Row] = []
    heldout: list[Row] = []
    needs_heldout: list[Row] = []
    if data_dir is not None:
        _benchmark_rows(data_dir, fit, valid, heldout, needs_heldout)
    for row in read_dir(handwritten_dir):
        row = {**row, "source": "handwritten", "file": row["source"]}
        (valid if handwritten_side(row) == "valid" else fit).append(row)
    fit += generate(*SYNTH_TRAIN)
    valid += generate(*SYNTH_VALID)
    heldout += generate(*SYNTH_HELDOUT)
    return Splits(fit=fit, valid=valid, heldout=heldout, needs_strong_heldout=needs_heldout)


def _benchmark_rows(
    data_dir: Path, fit: list[Row], valid: list[Row], heldout: list[Row], needs_heldout: list[Row]
) -> None:
    routing = read_jsonl(data_dir / "routing_eval.jsonl")
    strong = read_jsonl(data_dir / "needs_strong_routellm.jsonl")
    seen: set[str] = set()
    for i, r in enumerate(routing):
        row = {
            "id": f"routing-{i}",
            "source": r["source"],
            "label": r["label"],
            "request": chat(r["prompt"]),
            "prompt": r["prompt"],
            "evidence": r["source_label"].split(":")[0],
        }
        seen.add(prompt_key(r["prompt"]))
        {"fit": fit, "valid": valid, "heldout": heldout}[side(r)].append(row)
    subjects = _mmlu_subject_stats(strong)
    for i, r in enumerate(strong):
        where = side(r)
        if where == "heldout":
            needs_heldout.append({**r, "id": f"needs-{i}"})
            continue
        label = label_needs_strong(r, subjects)
        if label is None or prompt_key(r["prompt"]) in seen:
            continue
        row = {
            "id": f"needs-{i}",
            "source": f"{r['source']}*",
            "label": label,
            "request": chat(r["prompt"]),
            "prompt": r["prompt"],
            "evidence": "outcome",
        }
        (fit if where == "fit" else valid).append(row)
