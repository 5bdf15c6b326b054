"""Merging scraped prices into the registry document, with the checks that keep a bad scrape out.

Per provider, independently (one provider failing never blocks another):
- the page failed or gave nothing: its models keep their last good prices and are marked stale;
- a price out of sane bounds (not positive, below $0.001 or above $5,000 per 1M tokens: the marks
  of a per-token vs per-million mix-up), or a cached price above the input price: held back;
- a price that moved by more than `max_price_factor`, or a page that lost more than
  `max_model_loss` of the provider's listed models: held back too, unless the run is forced;
- otherwise applied: prices of known models updated, new models added, models the page no longer
  lists kept (with their last price) and marked `unlisted_since`.
Only price fields come from a page; capabilities, limits, quality, aliases and `deprecated` are
kept from the previous version. Then overrides.json is applied on top (see `apply_overrides`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .load import Document, RegistryError
from .schema import OVERRIDABLE, check_model

if TYPE_CHECKING:
    from llmproxy_scrapers import PriceEntry

Model = dict[str, Any]
ScrapeResult = Sequence["PriceEntry"] | BaseException
_DATED = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")  # claude-3-5-haiku-20241022, gpt-4o-2024-08-06
_MIX_UP = (1e5, 1e7)  # a ratio around 10^6 between old and new price: per-token vs per-million


class OverridesError(RegistryError):
    """overrides.json does not match its format; the message says where."""


@dataclass(frozen=True, slots=True)
class MergePolicy:
    max_model_loss: float = 0.34  # share of a provider's listed models one scrape may drop
    max_price_factor: float = 4.0  # a price may move by at most this factor (up or down) in one scrape
    min_price: float = 0.001  # USD per 1M tokens; below it a per-token price was likely read
    max_price: float = 5000.0  # above it a per-million price was likely scaled again
    force: bool = False  # apply scrapes held back for loss or factor (bounds still hold)


@dataclass(slots=True)
class ProviderOutcome:
    """What one provider's scrape did to the registry, for the report, the log and the status."""

    provider: str
    status: str  # "ok" applied, "held" held back, "stale" page failed
    message: str
    problems: list[str] = field(default_factory=list)
    updated: int = 0  # known models the page priced
    added: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "problems": self.problems,
            "updated": self.updated,
            "added": self.added,
            "unlisted": self.unlisted,
        }


@dataclass(slots=True)
class MergeResult:
    document: Document
    outcomes: dict[str, ProviderOutcome]
    drift: list[dict[str, Any]]  # overridden fields whose page value moved


def merge(
    doc: Document, scraped: Mapping[str, ScrapeResult], overrides: Mapping[str, Model], policy: MergePolicy, *, now: str
) -> MergeResult:
    """The next document: `doc` with each provider's scrape applied or held back, then overrides.
    `doc` is not changed; `now` is an ISO timestamp (its date part stamps `updated_at`)."""
    models = [dict(m) for m in doc["models"]]
    providers = {name: dict(status) for name, status in (doc.get("providers") or {}).items()}
    outcomes: dict[str, ProviderOutcome] = {}
    drift: list[dict[str, Any]] = []
    for provider, result in scraped.items():
        own = [m for m in models if m["provider"] == provider and not m.get("private")]
        if isinstance(result, BaseException) or not result:
            reason = _failure(result)
            outcome = ProviderOutcome(provider, "stale", f"{reason}; kept the last good prices, marked stale")
        else:
            outcome = _apply(provider, own, models, list(result), policy, now[:10], drift)
        for model in own:
            if outcome.status == "ok":
                model.pop("stale", None)
            else:
                model["stale"] = True
        outcomes[provider] = outcome
        providers[provider] = _status(providers.get(provider, {}), outcome, result, now)
    apply_overrides(models, overrides, now[:10])
    return MergeResult({**doc, "providers": providers, "models": models}, outcomes, drift)


def parse_overrides(doc: Any) -> dict[str, Model]:
    """The `models` of overrides.json, checked: {id: {field: value}}; OverridesError otherwise."""
    if not isinstance(doc, dict) or set(doc) - {"comment", "models"}:
        raise OverridesError('overrides.json must be {"comment": "...", "models": {"<model id>": {...}}}')
    models = doc.get("models", {})
    if not isinstance(models, dict):
        raise OverridesError("overrides.json: models must be an object of model id: fields")
    for model_id, fields in models.items():
        where = f"overrides.json models.{model_id}"
        if isinstance(fields, dict) and set(fields) - set(OVERRIDABLE):
            raise OverridesError(
                f"{where}: {sorted(set(fields) - set(OVERRIDABLE))[0]!r} cannot be overridden "
                f"(fields: {', '.join(OVERRIDABLE)})"
            )
        found = check_model(fields, where)
        if found:
            raise OverridesError("; ".join(found))
    return models


def apply_overrides(models: list[Model], overrides: Mapping[str, Model], today: str) -> None:
    """Put the operator's values over the scraped ones, in place.

    An overridden field keeps the page's value under `scraped`, so a later scrape can still see
    (and report) the page moving; an override removed from the file gives the page value back.
    An id the registry does not have is a private model, defined by the override alone.
    """
    by_id = {m["id"]: m for m in models}
    for model in models:
        wanted = overrides.get(model["id"], {}) if not model.get("private") else {}
        for key in [k for k in model.get("overridden", ()) if k not in wanted]:
            scraped = model.get("scraped", {})
            if key in scraped:
                model[key] = scraped[key]
            model["scraped"] = {k: v for k, v in scraped.items() if k != key}
        model["overridden"] = [k for k in model.get("overridden", ()) if k in wanted]
    models[:] = [m for m in models if not m.get("private") or m["id"] in overrides]
    for model_id, fields in overrides.items():
        existing = by_id.get(model_id)
        if existing is None or existing.get("private"):
            if not fields.get("provider") or not fields.get("provider_model"):
                raise OverridesError(
                    f"overrides.json models.{model_id}: not in the registry, so it needs "
                    "'provider' and 'provider_model' to define a private model"
                )
            private = {
                "id": model_id,
                **fields,
                "private": True,
                "source": fields.get("source") or "registry/overrides.json",
                "updated_at": existing.get("updated_at", today) if existing else today,
            }
            if existing is None:
                models.append(private)
            else:
                existing.clear()
                existing.update(private)
            continue
        scraped = dict(existing.get("scraped", {}))
        for key, value in fields.items():
            if key not in existing["overridden"]:
                scraped[key] = existing.get(key)
            existing[key] = value
        existing["overridden"] = sorted(fields)
        existing["scraped"] = scraped
    for model in models:
        if not model.get("overridden"):
            model.pop("overridden", None)
        if not model.get("scraped"):
            model.pop("scraped", None)


def _apply(
    provider: str,
    own: list[Model],
    models: list[Model],
    entries: list[PriceEntry],
    policy: MergePolicy,
    today: str,
    drift: list[dict[str, Any]],
) -> ProviderOutcome:
    """Check one provider's entries against its known models; apply them when they pass."""
    names = {name: m for m in own for name in (m["id"], m["provider_model"], *m.get("aliases", ()))}
    taken = {name for m in models for name in (m["id"], *m.get("aliases", ()))}
    matched: dict[str, tuple[Model, PriceEntry]] = {}
    new: list[PriceEntry] = []
    bad: list[str] = []
    moved: list[str] = []
    for entry in entries:
        model = _match(entry, names, own)
        page = _page_values(entry, model)
        bad += _bound_problems(entry.model, page, policy)
        if model is None:
            if entry.model not in taken:
                new.append(entry)
                taken.add(entry.model)
        elif model["id"] not in matched:
            matched[model["id"]] = (model, entry)
            moved += _factor_problems(model, page, policy)
    listed = [m for m in own if not m.get("unlisted_since")]
    lost = [m["id"] for m in listed if m["id"] not in matched]
    if listed and len(lost) / len(listed) > policy.max_model_loss:
        moved.append(
            f"the page lists {len(lost)} of the {len(listed)} known models no more "
            f"(more than {policy.max_model_loss:.0%}): {', '.join(lost[:8])}{'...' if len(lost) > 8 else ''}"
        )
    if bad:
        return ProviderOutcome(
            provider,
            "held",
            f"held back: {len(bad)} price(s) out of sane bounds; kept the last good prices, marked stale",
            problems=bad + moved,
        )
    if moved and not policy.force:
        return ProviderOutcome(
            provider,
            "held",
            "held back: the scrape changes too much to apply unreviewed "
            "(apply it with force); kept the last good prices, marked stale",
            problems=moved,
        )
    for model, entry in matched.values():
        _update(model, entry, taken, today, drift)
    for model_id in lost:
        model = next(m for m in own if m["id"] == model_id)
        model.setdefault("unlisted_since", today)
    models += [_new_model(entry, taken, today) for entry in new]
    message = f"applied: {len(matched)} known models priced, {len(new)} added, {len(lost)} no longer listed"
    if moved:
        message += f" (forced past {len(moved)} check(s))"
    return ProviderOutcome(
        provider, "ok", message, problems=moved, updated=len(matched), added=[e.model for e in new], unlisted=lost
    )


def _match(entry: PriceEntry, names: Mapping[str, Model], own: Sequence[Model]) -> Model | None:
    """The known model a page row is about: by id, upstream name or alias; else the one dated snapshot
    of that name (the page says "claude-3-5-haiku", the registry has "claude-3-5-haiku-20241022")."""
    for name in (entry.model, *entry.aliases):
        if name in names:
            return names[name]
    dated = [
        m
        for m in own
        if any(_DATED.sub("", n) == entry.model and n != entry.model for n in (m["id"], m["provider_model"]))
    ]
    return dated[0] if len(dated) == 1 else None


def _page_values(entry: PriceEntry, model: Model | None) -> dict[str, Any]:
    """The fields the page states, in the registry's terms. A price the page leaves out (None) is
    not a price of zero and does not erase a known one, so it is left out here too."""
    values: dict[str, Any] = {"input_per_mtok": entry.input_per_mtok, "output_per_mtok": entry.output_per_mtok}
    if entry.mode == "embedding":
        del values["output_per_mtok"]  # no output price on the page (none is billed): not a price of 0 to check
    if entry.cached_input_per_mtok is not None:
        values["cached_input_per_mtok"] = entry.cached_input_per_mtok
    if entry.cache_write_per_mtok is not None:
        values["cache_write_per_mtok"] = entry.cache_write_per_mtok
    if entry.input_per_mtok_long is not None or entry.output_per_mtok_long is not None:
        before = _previous(model, "long_context") or {}
        threshold = entry.long_context_threshold or before.get("threshold")
        if threshold:  # long-context prices without the point where they start cannot be used
            long = {**before, "threshold": threshold}
            if entry.input_per_mtok_long is not None:
                long["input_per_mtok"] = entry.input_per_mtok_long
            if entry.output_per_mtok_long is not None:
                long["output_per_mtok"] = entry.output_per_mtok_long
            values["long_context"] = long
    return values


def _prices(values: Mapping[str, Any]) -> dict[str, float]:
    """Every price in page values, flattened: long_context.input_per_mtok and so on."""
    flat = {k: v for k, v in values.items() if k != "long_context" and v is not None}
    for key, value in (values.get("long_context") or {}).items():
        if key != "threshold" and value is not None:
            flat[f"long_context.{key}"] = value
    return flat


def _bound_problems(name: str, values: Mapping[str, Any], policy: MergePolicy) -> list[str]:
    found = []
    for key, value in _prices(values).items():
        if not isinstance(value, (int, float)) or value <= 0:
            found.append(f"{name}.{key} = {value!r}: a scraped price must be positive")
        elif value < policy.min_price:
            found.append(
                f"{name}.{key} = ${value:g} per 1M tokens is below ${policy.min_price:g}: "
                "a per-token price read as per-million (off by 10^6)?"
            )
        elif value > policy.max_price:
            found.append(
                f"{name}.{key} = ${value:g} per 1M tokens is above ${policy.max_price:g}: "
                "a per-million price scaled by 10^6 again?"
            )
    cached, inp = values.get("cached_input_per_mtok"), values.get("input_per_mtok")
    if cached is not None and inp is not None and cached > inp:
        found.append(f"{name}: cached input ${cached:g} is above input ${inp:g}; columns mixed up?")
    return found


def _factor_problems(model: Model, values: Mapping[str, Any], policy: MergePolicy) -> list[str]:
    before = _prices({k: _previous(model, k) for k in values})
    found = []
    for key, value in _prices(values).items():
        old = before.get(key)
        if not old or not value or value <= 0:
            continue
        ratio = max(value / old, old / value)
        if ratio > policy.max_price_factor:
            hint = (
                " (a factor of about 10^6: per-token vs per-million mix-up?)"
                if _MIX_UP[0] <= ratio <= _MIX_UP[1]
                else ""
            )
            found.append(
                f"{model['id']}.{key}: ${old:g} -> ${value:g} per 1M tokens, "
                f"a change by x{ratio:.3g} (more than x{policy.max_price_factor:g}){hint}"
            )
    return found


def _previous(model: Model | None, key: str) -> Any:
    """The page's last value of a field: under `scraped` when an override hides it."""
    if model is None:
        return None
    if key in model.get("overridden", ()):
        return model.get("scraped", {}).get(key)
    return model.get(key)


def _update(model: Model, entry: PriceEntry, taken: set[str], today: str, drift: list[dict[str, Any]]) -> None:
    changed = False
    for key, value in _page_values(entry, model).items():
        if key in model.get("overridden", ()):
            scraped = model.setdefault("scraped", {})
            if key in scraped and scraped[key] != value:
                drift.append(
                    {
                        "id": model["id"],
                        "field": key,
                        "override": model.get(key),
                        "page_was": scraped[key],
                        "page_now": value,
                    }
                )
            model["scraped"] = {**scraped, key: value}
        elif model.get(key) != value:
            model[key] = value
            changed = True
    model.pop("unlisted_since", None)
    if entry.source_url:
        model["source"] = entry.source_url
    if changed:
        model["updated_at"] = today
    extra = [a for a in entry.aliases if a not in taken and a != model["id"]]
    if extra:
        model["aliases"] = [*model.get("aliases", ()), *extra]
        taken.update(extra)


def _new_model(entry: PriceEntry, taken: set[str], today: str) -> Model:
    """A model the page lists and the registry did not know. Its limits, capabilities and quality
    are unknown (null / defaults) until someone fills them in; the source says so."""
    aliases = [a for a in entry.aliases if a not in taken]
    taken.update(aliases)
    model = {
        "id": entry.model,
        "provider": entry.provider,
        "provider_model": entry.model,
        **_page_values(entry, None),
        "context_window": None,
        "max_output_tokens": None,
        "capabilities": {},
        "quality": None,
        "aliases": aliases,
        "deprecated": False,
        "source": entry.source_url or None,
        "updated_at": today,
    }
    if entry.mode == "embedding":
        model.update(output_per_mtok=0.0, mode="embedding", capabilities={"tools": False, "streaming": False})
    return model


def _failure(result: ScrapeResult) -> str:
    if isinstance(result, BaseException):
        text = str(result) or type(result).__name__
        return f"scrape failed: {text[:300]}"
    return "scrape failed: the page gave no prices"


def _status(before: Mapping[str, Any], outcome: ProviderOutcome, result: ScrapeResult, now: str) -> dict[str, Any]:
    """The provider's entry in `providers`: what the metrics and the admin read."""
    status: dict[str, Any] = {
        "status": outcome.status,
        "last_attempt": now,
        "last_success": now if outcome.status == "ok" else before.get("last_success"),
        "source": before.get("source"),
        "message": outcome.message,
    }
    if outcome.status == "ok" and not isinstance(result, BaseException):
        urls = sorted({e.source_url for e in result if e.source_url})
        status["source"] = ", ".join(urls) or before.get("source")
        if outcome.updated + len(outcome.added):
            status["models"] = outcome.updated + len(outcome.added)
    if outcome.problems:
        status["message"] += ": " + "; ".join(outcome.problems[:5])
    return status
