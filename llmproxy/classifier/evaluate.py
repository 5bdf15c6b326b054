"""Evaluate the shipped weights on the held-out split: `python -m llmproxy.classifier.evaluate [--weights PATH]`.

Prints Markdown tables: 3-class accuracy / macro-F1 / under-routing per source and pooled, ROC-AUC,
APGR and CPT on needs_strong_routellm held-out rows, and the cost of routing versus always-frontier,
each beside the always-frontier, random and length-only baselines.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from llmproxy.classifier import Classifier
from llmproxy.classifier.datasets import SYNTH_SAME_TEMPLATES, Row, chat, load_splits
from llmproxy.classifier.features import extract
from llmproxy.classifier.metrics import (LABELS, Prices, accuracy, gap_curve, macro_f1, request_cost, roc_auc,
                                         under_routing)
from llmproxy.classifier.synth import generate

RANDOM_SEEDS = range(20)
DEFAULT_TIER = "medium"  # router default for unsure predictions (config.RouterSettings.unsure_label)
FLOORS = {"simple": 20.0, "medium": 40.0, "complex": 55.0}  # router's default quality floors per label
REGISTRY = Path(__file__).resolve().parents[2] / "registry" / "models.json"
Predictor = Callable[[Row], tuple[str, float, bool]]


def length_of(row: Row) -> int:
    return extract(row["request"]).total_chars


def length_predictor(fit: list[Row]) -> Predictor:
    """3-class by total length, cut at the tertiles of the fit split (the length-only baseline)."""
    lengths = sorted(length_of(r) for r in fit)
    lo, hi = lengths[len(lengths) // 3], lengths[2 * len(lengths) // 3]

    def predict(row: Row) -> tuple[str, float, bool]:
        n = length_of(row)
        return ("simple" if n < lo else "medium" if n < hi else "complex"), float(n), True
    return predict


def model_predictor(clf: Classifier) -> Predictor:
    def predict(row: Row) -> tuple[str, float, bool]:
        c = clf.classify(row["request"])
        return c.label, c.score, c.confident
    return predict


def random_predictor(seed: int) -> Predictor:
    rng = random.Random(seed)

    def predict(row: Row) -> tuple[str, float, bool]:
        return rng.choice(LABELS), rng.random(), True
    return predict


def registry_prices(path: Path) -> tuple[Prices, str] | None:
    """Tier prices as the `cost` strategy would pick them: the cheapest current model meeting each floor."""
    if not path.is_file():
        return None
    models = [m for m in orjson.loads(path.read_bytes()).get("models", []) if not m.get("deprecated")]
    picks: dict[str, dict] = {}
    for label, floor in FLOORS.items():
        ok = [m for m in models if (m.get("quality") or {}).get("score", 0) >= floor]
        if not ok:
            return None
        picks[label] = min(ok, key=lambda m: 3 * m["input_per_mtok"] + m["output_per_mtok"])
    prices = Prices(*((picks[k]["input_per_mtok"], picks[k]["output_per_mtok"]) for k in LABELS))
    return prices, ", ".join(f"{k} = {picks[k]['id']} {prices.tier(k)}" for k in LABELS)


def _fmt(x: float) -> str:
    return "–" if x != x else f"{x:.3f}"


def _groups(rows: list[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[r["source"]].append(r)
        if r["source"].startswith("synth"):
            lang = r["lang"] if r["lang"] in ("en", "es") else "fr/de/pt"
            groups[f"{r['source']} [{lang}]"].append(r)
            groups[f"{r['source']} [{r['kind'].split('+')[0]}]"].append(r)
            groups["pooled: synthetic chat (bank B)" if r["source"] == "synth-heldout" else "pooled: synth A"].append(r)
        else:
            groups["pooled: benchmarks"].append(r)
            groups[f"pooled: benchmarks, evidence={r['evidence']}"].append(r)
        if r["source"] != "synth-train":
            groups["pooled: all held-out"].append(r)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0].startswith("pooled"), kv[0])))


def three_class_table(rows: list[Row], preds: dict[str, dict[str, tuple[str, float, bool]]]) -> list[str]:
    out = ["| source | n | model acc | model F1 | model under | under as routed | confident | acc if confident "
           "| length acc | length F1 | length under | random acc | random F1 | frontier acc |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, group in _groups(rows).items():
        y = [r["label"] for r in group]
        cells = [name, str(len(group))]
        m = [preds["model"][r["id"]] for r in group]
        conf = [(r["label"], p[0]) for r, p in zip(group, m) if p[2]]
        cells += [_fmt(accuracy(y, [p[0] for p in m])), _fmt(macro_f1(y, [p[0] for p in m])),
                  _fmt(under_routing(y, [p[0] for p in m])),
                  _fmt(under_routing(y, [p[0] if p[2] else DEFAULT_TIER for p in m])), _fmt(len(conf) / len(group)),
                  _fmt(accuracy([a for a, _ in conf], [b for _, b in conf]) if conf else float("nan"))]
        length = [preds["length"][r["id"]][0] for r in group]
        cells += [_fmt(accuracy(y, length)), _fmt(macro_f1(y, length)), _fmt(under_routing(y, length))]
        rand = [[preds[f"random{s}"][r["id"]][0] for r in group] for s in RANDOM_SEEDS]
        cells += [_fmt(sum(accuracy(y, p) for p in rand) / len(rand)), _fmt(sum(macro_f1(y, p) for p in rand) / len(rand))]
        cells.append(_fmt(accuracy(y, ["complex"] * len(y))))
        out.append("| " + " | ".join(cells) + " |")
    return out


def needs_strong_table(rows: list[Row], scorers: dict[str, Callable[[Row], float]]) -> list[str]:
    out = ["| source | n | needs-strong rate | router | ROC-AUC | APGR | CPT(50%) | CPT(80%) | CPT(95%) |",
           "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[r["source"]].append(r)
        groups["pooled"].append(r)
    for name, group in groups.items():
        weak = [r["weak_score"] / (10.0 if r["source"] == "mt-bench" else 1.0) for r in group]
        strong = [r["strong_score"] / (10.0 if r["source"] == "mt-bench" else 1.0) for r in group]
        positive = [bool(r["needs_strong"]) for r in group]
        rate = sum(positive) / len(group)
        for router, scorer in scorers.items():
            if router == "always-frontier":
                vals = [0.5, float("nan"), 1.0, 1.0, 1.0]  # PGR 1 only at 100% strong calls
            elif router == "random":
                curves = [gap_curve([random.Random(s * 7919 + i).random() for i in range(len(group))], weak, strong)
                          for s in RANDOM_SEEDS]
                aucs = [roc_auc(positive, [random.Random(s * 7919 + i).random() for i in range(len(group))])
                        for s in RANDOM_SEEDS]
                vals = [sum(aucs) / len(aucs), sum(c.apgr() for c in curves) / len(curves)]
                vals += [sum(c.cpt(t) for c in curves) / len(curves) for t in (0.5, 0.8, 0.95)]
            else:
                score = [scorer(r) for r in group]
                curve = gap_curve(score, weak, strong)
                vals = [roc_auc(positive, score), curve.apgr()] + [curve.cpt(t) for t in (0.5, 0.8, 0.95)]
            out.append(f"| {name} | {len(group)} | {rate:.3f} | {router} | " + " | ".join(_fmt(v) for v in vals) + " |")
    return out


def cost_table(rows: list[Row], preds: dict[str, dict[str, tuple[str, float, bool]]], prices: Prices) -> list[str]:
    out = ["| eval set | router | cost / always-frontier | under-routing | over-routing (simple->frontier) |",
           "|---|---|---|---|---|"]
    sets = {"benchmarks held-out": [r for r in rows if not r["source"].startswith("synth")],
            "synthetic chat (bank B)": [r for r in rows if r["source"] == "synth-heldout"]}
    sets["all held-out"] = sets["benchmarks held-out"] + sets["synthetic chat (bank B)"]
    tokens = {r["id"]: len(orjson.dumps(r["request"])) // 4 for r in rows}
    for name, group in sets.items():
        frontier = sum(request_cost(tokens[r["id"]], r["label"], "complex", prices) for r in group)
        routers: dict[str, list[list[str]]] = {
            "always-frontier": [["complex"] * len(group)],
            "model": [[preds["model"][r["id"]][0] for r in group]],
            f"model, unsure -> {DEFAULT_TIER}": [[p[0] if p[2] else DEFAULT_TIER for p in
                                                  (preds["model"][r["id"]] for r in group)]],
            "length-only": [[preds["length"][r["id"]][0] for r in group]],
            "random": [[preds[f"random{s}"][r["id"]][0] for r in group] for s in RANDOM_SEEDS],
        }
        y = [r["label"] for r in group]
        for router, runs in routers.items():
            cost = sum(sum(request_cost(tokens[r["id"]], r["label"], lab, prices) for r, lab in zip(group, run))
                       for run in runs) / len(runs)
            under = sum(under_routing(y, run) for run in runs) / len(runs)
            over = sum(sum(a == "simple" and b == "complex" for a, b in zip(y, run)) /
                       max(sum(a == "simple" for a in y), 1) for run in runs) / len(runs)
            out.append(f"| {name} | {router} | {cost / frontier:.1%} | {under:.3f} | {over:.3f} |")
    return out


def evaluate(weights: Path | None, registry: Path = REGISTRY) -> str:
    splits = load_splits()
    clf = Classifier.load(weights)
    rows = splits.heldout + generate(*SYNTH_SAME_TEMPLATES)
    predictors: dict[str, Predictor] = {"model": model_predictor(clf), "length": length_predictor(splits.fit)}
    predictors.update({f"random{s}": random_predictor(s) for s in RANDOM_SEEDS})
    preds = {name: {r["id"]: p(r) for r in rows} for name, p in predictors.items()}
    scorers: dict[str, Callable[[Row], float]] = {
        "model": lambda r: clf.classify(chat(r["prompt"])).score,
        "length-only": lambda r: float(len(r["prompt"])),
        "random": lambda r: 0.0,
        "always-frontier": lambda r: 1.0,
    }
    lines = ["### 3-class, held-out split (acc / macro-F1; under = complex sent to the small tier)", ""]
    lines += three_class_table(rows, preds)
    lines += ["", "`synth-train` rows are bank A's fit templates with an unseen seed: the gap to `synth-heldout` "
              "(bank B, other templates) is the template-recall effect. `under as routed`: unsure predictions "
              f"go to the router default, assumed `{DEFAULT_TIER}`.", "",
              "### needs_strong_routellm.jsonl held-out rows (strong = routed to the strong model; "
              "mt-bench scores / 10 in the pooled row)", ""]
    lines += needs_strong_table(splits.needs_strong_heldout, scorers)
    price_sets = [(Prices(), "assumed list prices, USD per Mtok in/out: small (0.15, 0.6), medium (1.25, 10.0), "
                             "frontier (5.0, 25.0)")]
    from_registry = registry_prices(registry)
    if from_registry:
        price_sets.append((from_registry[0], f"{registry.name}, cheapest current model meeting the router's "
                                             f"default quality floors {FLOORS}: {from_registry[1]}"))
    for prices, what in price_sets:
        lines += ["", f"### Cost of routing versus always-frontier ({what}; output tokens assumed by true label "
                  f"150/500/1000; input tokens = request JSON bytes / 4)", ""]
        lines += cost_table([r for r in rows if r["source"] != "synth-train"], preds, prices)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--registry", type=Path, default=REGISTRY, help="models.json for a second cost table")
    args = parser.parse_args(argv)
    print(evaluate(args.weights, args.registry))


if __name__ == "__main__":
    main()
