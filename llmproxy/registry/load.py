"""Model registry: load and strictly check registry/models.json, answer "which model is this name".

A Registry is immutable; the app swaps the whole object when a new file is loaded, so a request
that took a reference never sees half of one. Writing the file (versions, backup, diff, rollback)
is versions.py; merging scraped prices into it is merge.py; the file's format is schema.py.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import schema

log = logging.getLogger("llmproxy.registry")
Document = dict[str, Any]  # models.json as parsed JSON; writers keep every field of it


class RegistryError(ValueError):
    """models.json is missing or does not match the format; the message says where."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: bool = True
    vision: bool = False
    json_schema: bool = False
    streaming: bool = True
    reasoning: bool = False


DEFAULT_CAPABILITIES = Capabilities()  # immutable, so one instance serves every entry


@dataclass(frozen=True, slots=True)
class LongContext:
    """Prices that apply when a prompt is longer than `threshold` tokens (Gemini Pro, GPT-5.4...)."""

    threshold: int
    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    cached_input_per_mtok: float | None = None


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str
    provider: str
    provider_model: str
    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    cached_input_per_mtok: float | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    capabilities: Capabilities = DEFAULT_CAPABILITIES
    quality: float | None = None
    quality_source: str | None = None
    aliases: tuple[str, ...] = ()
    deprecated: bool = False
    source: str | None = None
    updated_at: str | None = None
    stale: bool = False  # the provider's last scrape failed or was held back: the price may be old
    cache_write_per_mtok: float | None = None  # Anthropic's prompt-cache write price
    long_context: LongContext | None = None
    # The API that serves it: "chat", "completion" (legacy /v1/completions only) or "embedding";
    # None for a model the registry does not know (any endpoint may try it).
    mode: str | None = "chat"

    @property
    def priced(self) -> bool:
        return self.input_per_mtok is not None and self.output_per_mtok is not None


@dataclass(frozen=True, slots=True)
class Registry:
    version: int
    generated_at: str
    models: tuple[ModelEntry, ...]
    providers: Mapping[str, Any]  # per provider: status, last_attempt, last_success, message, source
    by_name: Mapping[str, ModelEntry]
    path: str | None = None
    unpriced: tuple[str, ...] = ()  # ids of models whose price is unknown (their cost is reported as unknown)

    def lookup(self, name: str) -> ModelEntry | None:
        return self.by_name.get(name)

    def suggest(self, name: str) -> str | None:
        close = difflib.get_close_matches(name, list(self.by_name), n=1, cutoff=0.6)
        return close[0] if close else None


def build_registry(
    models: Iterable[ModelEntry],
    *,
    version: int = 0,
    generated_at: str = "",
    providers: Mapping[str, Any] | None = None,
    path: str | None = None,
) -> Registry:
    models = tuple(models)
    by_name: dict[str, ModelEntry] = {}
    for m in models:
        for name in (m.id, *m.aliases):
            if name in by_name and by_name[name] is not m:
                raise RegistryError(f"model name {name!r} is used twice ({by_name[name].id} and {m.id})")
            by_name[name] = m
    return Registry(
        version=version,
        generated_at=generated_at,
        models=models,
        providers=dict(providers or {}),
        by_name=by_name,
        path=path,
        unpriced=tuple(m.id for m in models if not m.priced),
    )


def parse_document(data: bytes) -> Document:
    """The document in the bytes of models.json after the strict format check; RegistryError
    naming the problems (at most a few) otherwise."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RegistryError(f"not valid JSON: {exc}") from None
    found = schema.problems(doc)
    if found or not isinstance(doc, dict):  # problems() names a non-object already; this narrows the type
        raise RegistryError("; ".join(found))
    return doc


def registry_from_document(doc: Document, *, path: str | None = None) -> Registry:
    """A Registry from a checked document; RegistryError if two models claim the same name."""
    return build_registry(
        (_entry(raw) for raw in doc["models"]),
        version=doc["version"],
        generated_at=str(doc.get("generated_at") or ""),
        providers=doc.get("providers") or {},
        path=path,
    )


def parse_registry(data: bytes, *, path: str | None = None) -> Registry:
    """A Registry from the bytes of models.json, or RegistryError naming the first problems."""
    return warn_unpriced(registry_from_document(parse_document(data), path=path))


def warn_unpriced(registry: Registry) -> Registry:
    """Loud on purpose: a model without a price must never be a silent $0."""
    if registry.unpriced:
        log.warning("models without a known price (cost will be reported as unknown): %s", ", ".join(registry.unpriced))
    return registry


def load_document(path: Path) -> tuple[Document, Path]:
    """The document at `path`; if it is bad, its .bak; if that is bad too, the copy shipped with the
    package. Returns the document and the file it came from. RegistryError only when none loads."""
    candidates = [path, backup_path(path), shipped_registry()]
    problems = []
    for candidate in dict.fromkeys(candidates):
        try:
            doc = parse_document(candidate.read_bytes())
            registry_from_document(doc)  # duplicate names are a problem of the file too
        except FileNotFoundError:
            problems.append(f"{candidate}: missing")
            continue
        except RegistryError as exc:
            problems.append(f"{candidate}: {exc}")
            log.error("registry file %s refused: %s", candidate, exc)
            continue
        if candidate != path:
            log.error("registry %s could not be used; fell back to %s", path, candidate)
        return doc, candidate
    raise RegistryError("no usable registry: " + "; ".join(problems))


def load_registry(path: Path) -> Registry:
    """The registry at `path`, with the fallbacks of `load_document`, so the gateway always starts."""
    doc, used = load_document(path)
    return warn_unpriced(registry_from_document(doc, path=str(used)))


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def shipped_registry() -> Path:
    """The models.json that ships with the code: inside the wheel, or registry/ in a checkout."""
    package = Path(__file__).resolve().parent.parent  # llmproxy/
    packaged = package / "_shipped" / "models.json"
    return packaged if packaged.is_file() else package.parent / "registry" / "models.json"


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _entry(raw: Mapping[str, Any]) -> ModelEntry:
    """A ModelEntry from a model object that passed the format check."""
    caps = raw.get("capabilities")
    quality = raw.get("quality") or {}
    return ModelEntry(
        id=raw["id"],
        provider=raw["provider"],
        provider_model=raw["provider_model"],
        input_per_mtok=_float(raw.get("input_per_mtok")),
        output_per_mtok=_float(raw.get("output_per_mtok")),
        cached_input_per_mtok=_float(raw.get("cached_input_per_mtok")),
        context_window=raw.get("context_window"),
        max_output_tokens=raw.get("max_output_tokens"),
        capabilities=Capabilities(**caps) if caps else DEFAULT_CAPABILITIES,
        quality=_float(quality.get("score")),
        quality_source=quality.get("source"),
        aliases=tuple(raw.get("aliases") or ()),
        deprecated=bool(raw.get("deprecated", False)),
        source=raw.get("source"),
        updated_at=raw.get("updated_at"),
        stale=bool(raw.get("stale", False)),
        cache_write_per_mtok=_float(raw.get("cache_write_per_mtok")),
        long_context=_long_context(raw.get("long_context")),
        mode=raw.get("mode", "chat"),
    )


def _long_context(raw: Any) -> LongContext | None:
    if not isinstance(raw, dict) or not raw.get("threshold"):
        return None
    return LongContext(
        threshold=int(raw["threshold"]),
        input_per_mtok=_float(raw.get("input_per_mtok")),
        output_per_mtok=_float(raw.get("output_per_mtok")),
        cached_input_per_mtok=_float(raw.get("cached_input_per_mtok")),
    )
