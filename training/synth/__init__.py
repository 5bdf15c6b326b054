"""Deterministic generator of realistic, labelled chat requests (no LLM, no network).

`generate("train", n, seed)` draws from template bank A, `generate("heldout", n, seed)` from bank B;
the banks share no template, app, document or code snippet. The label is the difficulty of the
*last user ask*, whatever surrounds it: a pasted 30 kB document with "fix the typo" is simple, a
one-line "prove ..." is complex. See docs/classifier.md for the rules.
"""

from __future__ import annotations

import random
import re
import zlib
from types import ModuleType
from typing import Any

from training.synth import bank_heldout, bank_train

FAMILIES: dict[str, ModuleType] = {"train": bank_train, "heldout": bank_heldout}
LANG_WEIGHTS: tuple[tuple[str, float], ...] = (("en", 0.55), ("es", 0.3), ("fr", 0.05), ("de", 0.05), ("pt", 0.05))
_SLOT = re.compile(r"\{(\w+)\}")

Row = dict[str, Any]


def _pick_lang(rng: random.Random) -> str:
    return rng.choices([lang for lang, _ in LANG_WEIGHTS], [w for _, w in LANG_WEIGHTS])[0]


def in_part(template: str, part: str) -> bool:
    """Template-level split of a bank: "valid" holds ~1/5 of the templates, "fit" the rest, "all" everything."""
    return part == "all" or (zlib.crc32(template.encode()) % 5 == 0) == (part == "valid")


def _pick(rng: random.Random, items: tuple[tuple[str, str], ...], lang: str, part: str = "all") -> tuple[str, str]:
    """A (lang, text) item of this part in `lang`, falling back to English, then to anything."""
    items = tuple(it for it in items if in_part(it[1], part)) or items
    pool = [it for it in items if it[0] == lang] or [it for it in items if it[0] == "en"] or list(items)
    return rng.choice(pool)


def _fill(rng: random.Random, bank: ModuleType, template: str) -> str:
    return _SLOT.sub(lambda m: rng.choice(bank.SLOTS.get(m.group(1), ("x",))), template)


def _document(rng: random.Random, bank: ModuleType, lang: str) -> str:
    """Prose, code or a log of log-uniform size between ~150 chars and ~40 kB."""
    target = int(10 ** rng.uniform(2.2, 4.6))
    kind = rng.choices(("prose", "code", "log"), (0.5, 0.35, 0.15))[0]
    parts: list[str] = []
    size = 0
    prose = bank.PROSE.get(lang) or bank.PROSE["en"]
    while size < target:
        if kind == "prose":
            chunk = " ".join(rng.choice(prose) for _ in range(rng.randint(2, 6))) + "\n\n"
        elif kind == "code":
            chunk = rng.choice(bank.CODE) + "\n"
        else:
            chunk = (
                f"2025-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 12:{rng.randint(10, 59)}:0{rng.randint(0, 9)} "
                f"{rng.choice(('INFO', 'WARN', 'ERROR'))} worker-{rng.randint(1, 9)} request_id={rng.randint(1000, 9999)} done\n"
            )
        parts.append(chunk)
        size += len(chunk)
    text = "".join(parts)
    return f"```\n{text}```" if kind != "prose" and rng.random() < 0.7 else text


def _ask(rng: random.Random, bank: ModuleType, label: str, lang: str, part: str) -> tuple[str, str, str]:
    """(user text, kind, language actually used) for a final ask of `label`."""
    with_doc = rng.random() < 0.35
    pool = {
        ("simple", False): bank.SIMPLE,
        ("simple", True): bank.SIMPLE_DOC,
        ("medium", False): bank.MEDIUM,
        ("medium", True): bank.MEDIUM_DOC,
        ("complex", False): bank.COMPLEX,
        ("complex", True): bank.COMPLEX_DOC,
    }[(label, with_doc)]
    lang, template = _pick(rng, pool, lang, part)
    ask = _fill(rng, bank, template)
    kind = "doc" if with_doc else "plain"
    if label == "medium" and not with_doc and rng.random() < 0.25:
        ask += " " + " ".join(rng.sample(bank.CONSTRAINTS_LIGHT, rng.randint(1, 2)))
    if label == "complex" and rng.random() < 0.25:
        hard = rng.sample(bank.CONSTRAINTS_HARD, rng.randint(2, 4))
        ask += "\n\nRequirements:\n" + "\n".join(f"{i + 1}. {c}" for i, c in enumerate(hard))
        kind += "+constraints"
    if with_doc:
        doc = _document(rng, bank, lang)
        placement = rng.random()
        if placement < 0.45:
            ask = f"{ask}\n\n{doc}"
        elif placement < 0.9:
            ask = f"{doc}\n\n{ask}"
        else:
            ask = f"{ask}\n\n{doc}\n\n{ask}"
    return ask, kind, lang


def _system(rng: random.Random, bank: ModuleType, lang: str, part: str) -> str | None:
    if rng.random() < 0.3:
        return None
    _, text = _pick(rng, bank.APPS, lang, part)
    if rng.random() < 0.4:
        policies = rng.sample(bank.POLICY_LINES, rng.randint(1, len(bank.POLICY_LINES)))
        text += "\n\nRules:\n" + "\n".join(f"- {p}" for p in policies)
    return text


def _tools(rng: random.Random, bank: ModuleType) -> list[dict[str, Any]]:
    chosen = rng.sample(bank.TOOLS, rng.randint(1, min(5, len(bank.TOOLS))))
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": desc,
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
            },
        }
        for name, desc in chosen
    ]


def _history(rng: random.Random, bank: ModuleType, lang: str, part: str) -> list[dict[str, Any]]:
    """One to three earlier user/assistant exchanges of any difficulty."""
    turns: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 3)):
        text, _, _ = _ask(rng, bank, rng.choice(("simple", "medium", "complex")), lang, part)
        reply = rng.choice(bank.ASSISTANT_FILLER.get(lang, bank.ASSISTANT_FILLER["en"]))
        reply += "\n" + " ".join(rng.choice(bank.PROSE.get(lang) or bank.PROSE["en"]) for _ in range(rng.randint(1, 8)))
        turns += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
    return turns


def _final_turn(
    rng: random.Random, bank: ModuleType, label: str, lang: str, has_history: bool, part: str
) -> tuple[str, str, str]:
    if has_history and rng.random() < 0.4:
        pool = {"simple": bank.FOLLOW_SIMPLE, "medium": bank.FOLLOW_MEDIUM, "complex": bank.FOLLOW_COMPLEX}[label]
        lang, text = _pick(rng, pool, lang, part)
        return text, "followup", lang
    return _ask(rng, bank, label, lang, part)


def make_request(rng: random.Random, bank: ModuleType, label: str, part: str = "all") -> Row:
    lang = _pick_lang(rng)
    messages: list[dict[str, Any]] = []
    system = _system(rng, bank, lang, part)
    if system:
        messages.append({"role": rng.choice(("system", "system", "developer")), "content": system})
    has_history = rng.random() < 0.25
    if has_history:
        messages += _history(rng, bank, lang, part)
    text, kind, lang = _final_turn(rng, bank, label, lang, has_history, part)
    content: Any = text
    if rng.random() < 0.05:
        content = [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]
    elif rng.random() < 0.1:
        content = [{"type": "text", "text": text}]
    messages.append({"role": "user", "content": content})
    request: dict[str, Any] = {"model": "auto", "messages": messages}
    if rng.random() < 0.25:
        request["tools"] = _tools(rng, bank)
    if rng.random() < 0.1:
        request["response_format"] = {"type": rng.choice(("json_object", "json_schema"))}
    if rng.random() < 0.3:
        request["max_tokens"] = rng.choice((64, 256, 512, 1024, 4096))
    return {"request": request, "label": label, "lang": lang, "kind": kind + ("+history" if has_history else "")}


def generate(family: str, n: int, seed: int, part: str = "all") -> list[Row]:
    """`n` labelled requests from bank `family` ("train" or "heldout"), balanced over labels.

    `part` restricts the bank's ask/app templates: "fit" and "valid" are disjoint (see in_part), so the
    validation rows that set the decision thresholds come from templates the fit never saw.
    """
    bank = FAMILIES[family]
    rng = random.Random(f"{family}:{seed}:{part}")
    labels = ("simple", "medium", "complex")
    rows = [make_request(rng, bank, labels[i % 3], part) for i in range(n)]
    for i, row in enumerate(rows):
        row["id"] = f"synth-{family}-{part}-{seed}-{i}"
        row["source"] = f"synth-{family}"
    return rows
