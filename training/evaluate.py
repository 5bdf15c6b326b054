"""Evaluate the shipped weights: `python -m training.evaluate [--data DIR] [--weights PATH]`.

Prints Markdown tables:
1. the independent evaluation set (training/evalset/, hand-written gateway requests never used in
   training or tuning): accuracy, macro-F1, per-class recall, under-routing (complex -> simple) and
   cost versus always-frontier at today's registry prices, pooled and per source, for the model, the
   previous model (its stored predictions), a length-only router, random and always-frontier;
2. the old held-out bank (held-out benchmark rows when --data is given, and synthetic bank B);
3. with --data, ROC-AUC / APGR / CPT on needs_strong_routellm.jsonl held-out rows.
"""

from __future__ import annotations

import argparse
import os
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from llmproxy.classifier import Classifier
from llmproxy.classifier.features import extract, featurize
from llmproxy.classifier.model import CLASSES
from training.chatfile import read_dir
from training.datasets import Row, chat, load_splits, routing_data
from training.metrics import LABELS, Prices, accuracy, gap_curve, macro_f1, recall, request_cost, roc_auc, under_routing

REPO = Path(__file__).resolve().parents[1]
EVALSET = REPO / "training" / "evalset"
PREVIOUS = REPO / "training" / "reports" / "previous_model_predictions.json"
REGISTRY = REPO / "registry" / "models.json"
RANDOM_SEEDS = range(20)
DEFAULT_TIER = "medium"  # router default for unsure predictions (config.RouterSettings.unsure_label)
FLOORS = {"simple": 20.0, "medium": 40.0, "complex": 55.0}  # router's default quality floors per label
Prediction = tuple[str, float, bool]  # label, score, confident
Predictor = Callable[[Row], Prediction]


def length_of(row: Row) -> int:
    return extract(row["request"]).total_chars


def length_predictor(fit: list[Row]) -> Predictor:
    """3-class by total length, cut at the tertiles of the fit split (the length-only baseline)."""
    lengths = sorted(length_of(r) for r in fit)
    lo, hi = lengths[len(lengths) // 3], lengths[2 * len(lengths) // 3]

    def predict(row: Row) -> Prediction:
        n = length_of(row)
        return ("simple" if n < lo else "medium" if n < hi else "complex"), float(n), True

    return predict


def model_predictor(clf: Classifier) -> Predictor:
    def predict(row: Row) -> Prediction:
        c = clf.classify(row["request"])
        return c.label, c.score, c.confident

    return predict


def registry_prices(path: Path) -> tuple[Prices, str]:
    """Tier prices as the `cost` strategy would pick them: the cheapest current model meeting each floor."""
    models = [m for m in orjson.loads(path.read_bytes()).get("models", []) if not m.get("deprecated")]
    picks: dict[str, dict] = {}
    for label, floor in FLOORS.items():
        ok = [
            m
            for m in models
            if (m.get("quality") or {}).get("score", 0) >= floor
            and m.get("input_per_mtok") is not None
            and m.get("output_per_mtok") is not None
        ]
        picks[label] = min(ok, key=lambda m: 3 * m["input_per_mtok"] + m["output_per_mtok"])
    prices = Prices(*((picks[k]["input_per_mtok"], picks[k]["output_per_mtok"]) for k in LABELS))
    return prices, ", ".join(f"{k} = {picks[k]['id']} {prices.tier(k)}" for k in LABELS)


def _fmt(x: float) -> str:
    return "–" if x != x else f"{x:.3f}"


def routed(preds: list[Prediction]) -> list[str]:
    """Labels as the router uses them: an unsure prediction goes to the default tier."""
    return [p[0] if p[2] else DEFAULT_TIER for p in preds]


def cost_share(rows: list[Row], labels: list[str], prices: Prices) -> float:
    """Cost of routing by `labels` over always-frontier. Output tokens assumed by true label, input tokens
    = request JSON bytes / 4."""
    spent = frontier = 0.0
    for row, label in zip(rows, labels, strict=True):
        tokens = len(orjson.dumps(row["request"])) // 4
        spent += request_cost(tokens, row["label"], label, prices)
        frontier += request_cost(tokens, row["label"], "complex", prices)
    return spent / frontier if frontier else float("nan")


BOOTSTRAP = 500  # resamples for the macro-F1 interval


def f1_interval(y: list[str], pred: list[str]) -> tuple[float, float]:
    """95% bootstrap interval of macro-F1 (rows resampled with replacement; fixed seed)."""
    rng = random.Random(0)
    idx = range(len(y))
    vals = sorted(
        macro_f1([y[i] for i in s], [pred[i] for i in s])
        for s in (rng.choices(idx, k=len(y)) for _ in range(BOOTSTRAP))
    )
    return vals[int(0.025 * BOOTSTRAP)], vals[int(0.975 * BOOTSTRAP) - 1]


def pooled_table(rows: list[Row], routers: dict[str, list[list[str]]], prices: Prices) -> list[str]:
    """One line per router over all `rows` (a router with several runs, e.g. random, is averaged)."""
    out = [
        "| router | acc | macro-F1 | macro-F1 95% CI | recall simple | recall medium | recall complex "
        "| complex->simple | cost / always-frontier |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    y = [r["label"] for r in rows]
    for name, runs in routers.items():
        vals = [
            [
                accuracy(y, p),
                macro_f1(y, p),
                recall(y, p, "simple"),
                recall(y, p, "medium"),
                recall(y, p, "complex"),
                under_routing(y, p),
                cost_share(rows, p, prices),
            ]
            for p in runs
        ]
        mean = [sum(v[i] for v in vals) / len(vals) for i in range(7)]
        ci = "{:.3f}-{:.3f}".format(*f1_interval(y, runs[0])) if len(runs) == 1 else "–"
        out.append(
            f"| {name} | {_fmt(mean[0])} | {_fmt(mean[1])} | {ci} | "
            + " | ".join(_fmt(v) for v in mean[2:6])
            + f" | {mean[6]:.1%} |"
        )
    return out


def per_source_table(rows: list[Row], routers: dict[str, list[str]], prices: Prices) -> list[str]:
    """Per source: n, then accuracy / macro-F1 / complex->simple / cost share for each router."""
    names = list(routers)
    head = "| source | n | " + " | ".join(f"{n} acc | {n} F1 | {n} c->s | {n} cost" for n in names) + " |"
    out = [head, "|---|---|" + "---|" * (4 * len(names))]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[r["source"]].append(i)
    for source in sorted(groups):
        idx = groups[source]
        y = [rows[i]["label"] for i in idx]
        cells = [source, str(len(idx))]
        for n in names:
            p = [routers[n][i] for i in idx]
            cells += [
                _fmt(accuracy(y, p)),
                _fmt(macro_f1(y, p)),
                _fmt(under_routing(y, p)),
                f"{cost_share([rows[i] for i in idx], p, prices):.0%}",
            ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def calibration(clf: Classifier, rows: list[Row], bins: int = 10) -> tuple[float, float, float]:
    """(expected calibration error of the top-class probability over `bins` equal-width bins, mean
    top probability, accuracy of the top class): a calibrated model has ECE near 0."""
    top: list[tuple[float, bool]] = []
    for r in rows:
        probs = clf.model.probabilities(featurize(r["request"]))
        best = max(range(len(CLASSES)), key=probs.__getitem__)
        top.append((probs[best], CLASSES[best] == r["label"]))
    ece = 0.0
    for b in range(bins):
        inside = [(p, ok) for p, ok in top if b / bins <= p < (b + 1) / bins or (b == bins - 1 and p == 1.0)]
        if inside:
            ece += (
                len(inside)
                / len(top)
                * abs(sum(p for p, _ in inside) / len(inside) - sum(ok for _, ok in inside) / len(inside))
            )
    return ece, sum(p for p, _ in top) / len(top), sum(ok for _, ok in top) / len(top)


def needs_strong_table(rows: list[Row], scorers: dict[str, Callable[[Row], float]]) -> list[str]:
    out = [
        "| source | n | needs-strong rate | router | ROC-AUC | APGR | CPT(50%) | CPT(80%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[r["source"]].append(r)
        groups["pooled"].append(r)
    for name, group in groups.items():
        weak = [r["weak_score"] / (10.0 if r["source"] == "mt-bench" else 1.0) for r in group]
        strong = [r["strong_score"] / (10.0 if r["source"] == "mt-bench" else 1.0) for r in group]
        positive = [bool(r["needs_strong"]) for r in group]
        for router, scorer in scorers.items():
            score = [scorer(r) for r in group]
            curve = gap_curve(score, weak, strong)
            vals = [roc_auc(positive, score), curve.apgr(), curve.cpt(0.5), curve.cpt(0.8)]
            out.append(
                f"| {name} | {len(group)} | {sum(positive) / len(group):.3f} | {router} | "
                + " | ".join(_fmt(v) for v in vals)
                + " |"
            )
    return out


def evaluate(weights: Path | None, data_dir: Path | None, registry: Path = REGISTRY) -> str:
    splits = load_splits(data_dir)
    clf = Classifier.load(weights)
    prices, picked = registry_prices(registry)
    previous = orjson.loads(PREVIOUS.read_bytes()) if PREVIOUS.is_file() else {}
    length = length_predictor(splits.fit)
    hand_length = length_predictor([r for r in splits.fit if r["source"] == "handwritten"] or splits.fit)
    model = model_predictor(clf)
    lines = [
        f"Prices: {registry.name}, the cheapest current model meeting the router's default quality floors "
        f"{FLOORS}: {picked}. Output tokens assumed by true label 150/500/1000; input tokens = request "
        f"JSON bytes / 4. `routed` = unsure predictions sent to the router default (`{DEFAULT_TIER}`). "
        "Length-only cuts total message characters at the tertiles of the fit split (or of its "
        "hand-written rows only, which look more like the independent set).",
        "",
    ]
    sets = [
        ("Independent evaluation set (training/evalset/, hand-written, never trained or tuned on)", read_dir(EVALSET)),
        ("Old held-out bank (held-out benchmark rows and synthetic bank B templates)", splits.heldout),
    ]
    for title, rows in sets:
        preds = [model(r) for r in rows]
        prev = [tuple(previous[r["id"]]) if r["id"] in previous else None for r in rows]
        routers: dict[str, list[list[str]]] = {"model": [[p[0] for p in preds]], "model, routed": [routed(preds)]}
        if all(prev):
            routers["previous model"] = [[p[0] for p in prev]]  # type: ignore[index]  # all(prev): no None left
            routers["previous model, routed"] = [routed(prev)]  # type: ignore[arg-type]  # as above
        routers["length-only"] = [[length(r)[0] for r in rows]]
        routers["length-only, cuts from hand-written rows"] = [[hand_length(r)[0] for r in rows]]
        routers["random"] = [
            [random.Random(s * 7919 + i).choice(LABELS) for i in range(len(rows))] for s in RANDOM_SEEDS
        ]
        routers["always-frontier"] = [["complex"] * len(rows)]
        ece, mean_p, top_acc = calibration(clf, rows)
        confident = sum(p[2] for p in preds) / len(preds)
        lines += [f"### {title}: {len(rows)} rows", ""] + pooled_table(rows, routers, prices) + [""]
        lines += [
            f"Model calibration (argmax of the probabilities, before the decision offsets): ECE {ece:.3f}, "
            f"mean top probability {mean_p:.3f}, top-class accuracy {top_acc:.3f}; confident on "
            f"{confident:.1%} of rows.",
            "",
        ]
        per_source = {
            k: v[0] for k, v in routers.items() if k in ("model, routed", "previous model, routed", "length-only")
        }
        lines += per_source_table(rows, per_source, prices) + [""]
    if splits.needs_strong_heldout:
        scorers: dict[str, Callable[[Row], float]] = {
            "model": lambda r: clf.classify(chat(r["prompt"])).score,
            "length-only": lambda r: float(len(r["prompt"])),
        }
        lines += ["### needs_strong_routellm.jsonl held-out rows (AUC of the score for needs-strong)", ""]
        lines += needs_strong_table(splits.needs_strong_heldout, scorers)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--data", default=None, help="folder of the public routing files (or LLMPROXY_ROUTING_DATA)")
    parser.add_argument("--registry", type=Path, default=REGISTRY, help="models.json for the cost columns")
    args = parser.parse_args(argv)
    print(evaluate(args.weights, routing_data(args.data, dict(os.environ)), args.registry))


if __name__ == "__main__":
    main()
