"""The format of registry/models.json, checked strictly: every key known, every value of its type.

This is the schema, written as code (a table of fields and small checks) rather than a JSON Schema
file, so that it ships with the package and needs no validator library. `problems(doc)` lists what
is wrong, each with its place (`models[3] 'gpt-4o'.input_per_mtok: ...`); an empty list means the
document is good. README.md ("Model registry") documents the same format for people.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], str | None]  # None when the value is fine, else what is wrong with it

PRICE_FIELDS = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok")
LONG_CONTEXT_PRICES = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok")
CAPABILITIES = ("tools", "vision", "json_schema", "streaming", "reasoning")
STATUSES = ("seeded", "ok", "stale", "held")
MODES = ("chat", "completion", "embedding")  # which API serves the model: chat, legacy completions, embeddings
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
_PROVIDER = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_MAX_PROBLEMS = 5


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _price(value: Any) -> str | None:
    if value is None or (_number(value) and value >= 0):
        return None
    return "must be a non-negative number (USD per 1M tokens) or null"


def _positive_int(value: Any) -> str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return None
    return "must be a positive integer or null"


def _name(value: Any) -> str | None:
    if isinstance(value, str) and _NAME.match(value):
        return None
    return "must be a non-empty name without spaces"


def _provider(value: Any) -> str | None:
    if isinstance(value, str) and _PROVIDER.match(value):
        return None
    return "must be a lower-case provider name"


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _text(value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else "must be a string or null"


def _names(value: Any) -> str | None:
    if not isinstance(value, list) or any(_name(v) for v in value):
        return "must be a list of names"
    return "lists a name twice" if len(set(value)) != len(value) else None


def _capabilities(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an object of true/false flags"
    for key, flag in value.items():
        if key not in CAPABILITIES:
            return f"has unknown capability {key!r} (known: {', '.join(CAPABILITIES)})"
        if not isinstance(flag, bool):
            return f"{key} must be true or false"
    return None


def _mode(value: Any) -> str | None:
    return None if value in MODES else f"must be one of {', '.join(MODES)}"


def _quality(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"score", "source"}:
        return 'must be null or {"score": number, "source": text}'
    if not _number(value.get("score")):
        return "score must be a number"
    return _text(value.get("source"))


def _long_context(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"threshold", *LONG_CONTEXT_PRICES}:
        return 'must be null or {"threshold": tokens, "input_per_mtok": ..., "output_per_mtok": ...}'
    if value.get("threshold") is None or _positive_int(value["threshold"]):
        return "threshold must be a positive integer (tokens)"
    for key in LONG_CONTEXT_PRICES:
        if _price(value.get(key)):
            return f"{key} {_price(value.get(key))}"
    return None


def _field_names(value: Any) -> str | None:
    if not isinstance(value, list) or any(v not in OVERRIDABLE for v in value):
        return f"must list overridable fields ({', '.join(OVERRIDABLE)})"
    return None


def _scraped(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an object of field: value as the pricing page states it"
    for key, item in value.items():
        if key not in OVERRIDABLE:
            return f"has unknown field {key!r}"
        if key == "long_context" and _long_context(item):
            return f"long_context {_long_context(item)}"
        if key in PRICE_FIELDS and _price(item):
            return f"{key} {_price(item)}"
    return None


MODEL_FIELDS: Mapping[str, Check] = {
    "id": _name,
    "provider": _provider,
    "provider_model": _name,
    "input_per_mtok": _price,
    "output_per_mtok": _price,
    "cached_input_per_mtok": _price,
    "cache_write_per_mtok": _price,
    "long_context": _long_context,
    "context_window": _positive_int,
    "max_output_tokens": _positive_int,
    "capabilities": _capabilities,
    "quality": _quality,
    "aliases": _names,
    "mode": _mode,
    "deprecated": _bool,
    "source": _text,
    "updated_at": _text,
    # Kept by the scrape merge: why a price is what it is.
    "stale": _bool,  # the provider's last scrape failed or was held back
    "unlisted_since": _text,  # the pricing page stopped listing the model on that date
    "private": _bool,  # defined only in overrides.json
    "overridden": _field_names,  # fields whose value comes from overrides.json
    "scraped": _scraped,  # the page's values of those fields, to see the drift
}
REQUIRED_MODEL_FIELDS = ("id", "provider", "provider_model")
# What an operator may set in overrides.json (everything a model has, except its id).
OVERRIDABLE = (
    "provider",
    "provider_model",
    *PRICE_FIELDS,
    "long_context",
    "context_window",
    "max_output_tokens",
    "capabilities",
    "quality",
    "aliases",
    "deprecated",
    "source",
    "mode",
)

PROVIDER_FIELDS: Mapping[str, Check] = {
    "status": lambda v: None if v in STATUSES else f"must be one of {', '.join(STATUSES)}",
    "last_attempt": _text,
    "last_success": _text,
    "source": _text,
    "message": _text,
    "models": _positive_int,
}


def _changes(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"from_version", "reason", "added", "removed", "changed"}:
        return "must be null or {from_version, reason, added, removed, changed}"
    for key in ("added", "removed"):
        if not isinstance(value.get(key, []), list):
            return f"{key} must be a list"
    if not isinstance(value.get("changed", []), list):
        return "changed must be a list"
    return None


TOP_FIELDS: Mapping[str, Check] = {
    "version": lambda v: (
        None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else "must be a non-negative integer"
    ),
    "generated_at": _text,
    "providers": lambda v: None if isinstance(v, dict) else "must be an object of provider: status",
    "models": lambda v: None if isinstance(v, list) else "must be a list of models",
    "changes": _changes,
}


def problems(doc: Any) -> list[str]:
    """What is wrong with a parsed models.json document (at most a few, each with its place)."""
    if not isinstance(doc, dict):
        return ["the document must be a JSON object with 'version', 'providers' and 'models'"]
    found = _check_object(doc, TOP_FIELDS, ("version", "models"), "")
    if found:
        return found
    for name, status in doc.get("providers", {}).items():
        where = f"providers.{name}"
        if not isinstance(status, dict):
            found.append(f"{where} must be an object")
            continue
        found += _check_object(status, PROVIDER_FIELDS, ("status",), where + ".")
    for index, model in enumerate(doc["models"]):
        where = f"models[{index}]"
        if isinstance(model, dict) and isinstance(model.get("id"), str):
            where += f" {model['id']!r}"
        if not isinstance(model, dict):
            found.append(f"{where} must be an object")
            continue
        found += _check_object(model, MODEL_FIELDS, REQUIRED_MODEL_FIELDS, where + ".")
        if len(found) >= _MAX_PROBLEMS:
            break
    return found[:_MAX_PROBLEMS]


def check_model(model: Any, where: str) -> list[str]:
    """Problems of one model object (used for overrides.json entries, which have the same fields)."""
    if not isinstance(model, dict):
        return [f"{where} must be an object"]
    return _check_object(model, MODEL_FIELDS, (), where + ".")


def _check_object(
    obj: Mapping[str, Any], fields: Mapping[str, Check], required: tuple[str, ...], prefix: str
) -> list[str]:
    found = [f"{prefix}{key} is missing" for key in required if key not in obj]
    for key, value in obj.items():
        check = fields.get(key)
        if check is None:
            found.append(f"{prefix}{key} is not a known field")
        elif (problem := check(value)) is not None:
            found.append(f"{prefix}{key} {problem}")
    return found
