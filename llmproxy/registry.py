"""Model registry: load and validate registry/models.json, answer "which model is this name".

A Registry is immutable; the app swaps the whole object when a new file is loaded, so a request
that took a reference never sees half of one.
"""
from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("llmproxy.registry")
PROVIDERS = ("openai", "anthropic", "gemini")


class RegistryError(ValueError):
    """models.json is missing or does not match the format; the message says where."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: bool = True
    vision: bool = False
    json_schema: bool = False
    streaming: bool = True
    reasoning: bool = False


DEFAULT_CAPABILITIES = Capabilities()   # immutable, so one instance serves every entry


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

    @property
    def priced(self) -> bool:
        return self.input_per_mtok is not None and self.output_per_mtok is not None


@dataclass(frozen=True, slots=True)
class Registry:
    version: int
    generated_at: str
    models: tuple[ModelEntry, ...]
    providers: Mapping[str, Any]
    by_name: Mapping[str, ModelEntry]
    path: str | None = None

    def lookup(self, name: str) -> ModelEntry | None:
        return self.by_name.get(name)

    def suggest(self, name: str) -> str | None:
        close = difflib.get_close_matches(name, list(self.by_name), n=1, cutoff=0.6)
        return close[0] if close else None


def build_registry(models: Iterable[ModelEntry], *, version: int = 0, generated_at: str = "",
                   providers: Mapping[str, Any] | None = None, path: str | None = None) -> Registry:
    models = tuple(models)
    by_name: dict[str, ModelEntry] = {}
    for m in models:
        for name in (m.id, *m.aliases):
            if name in by_name and by_name[name] is not m:
                raise RegistryError(f"model name {name!r} is used twice ({by_name[name].id} and {m.id})")
            by_name[name] = m
    return Registry(version=version, generated_at=generated_at, models=models,
                    providers=dict(providers or {}), by_name=by_name, path=path)


def parse_registry(data: bytes, *, path: str | None = None) -> Registry:
    """A Registry from the bytes of models.json, or RegistryError naming the first problem."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RegistryError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise RegistryError("expected an object with a 'models' list")
    if not isinstance(doc.get("version"), int):
        raise RegistryError("'version' must be an integer")
    models = [_entry(raw, i) for i, raw in enumerate(doc["models"])]
    unpriced = [m.id for m in models if not m.priced]
    if unpriced:
        log.warning("models without a known price (cost will be reported as unknown): %s", ", ".join(unpriced))
    return build_registry(models, version=doc["version"], generated_at=str(doc.get("generated_at", "")),
                          providers=doc.get("providers") or {}, path=path)


def load_registry(path: Path) -> Registry:
    """The registry at `path`; if it is bad, its .bak; if that is bad too, the copy shipped with the
    package. Raises RegistryError only when none of them loads."""
    candidates = [path, path.with_name(path.name + ".bak"), shipped_registry()]
    problems = []
    for candidate in dict.fromkeys(candidates):
        try:
            registry = parse_registry(candidate.read_bytes(), path=str(candidate))
        except FileNotFoundError:
            problems.append(f"{candidate}: missing")
            continue
        except RegistryError as exc:
            problems.append(f"{candidate}: {exc}")
            log.error("registry file %s refused: %s", candidate, exc)
            continue
        if candidate != path:
            log.error("registry %s could not be used; fell back to %s", path, candidate)
        return registry
    raise RegistryError("no usable registry: " + "; ".join(problems))


def shipped_registry() -> Path:
    """The models.json that ships with the code: inside the wheel, or registry/ in a checkout."""
    packaged = Path(__file__).resolve().parent / "_shipped" / "models.json"
    return packaged if packaged.is_file() else Path(__file__).resolve().parent.parent / "registry" / "models.json"

_NUM = (int, float)


def _entry(raw: Any, index: int) -> ModelEntry:
    where = f"models[{index}]"
    if not isinstance(raw, dict):
        raise RegistryError(f"{where} must be an object")
    for key in ("id", "provider", "provider_model"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise RegistryError(f"{where}.{key} must be a non-empty string")
    where = f"model {raw['id']!r}"
    prices = {}
    for key in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, _NUM) or isinstance(value, bool) or value < 0):
            raise RegistryError(f"{where}: {key} must be a non-negative number or null")
        prices[key] = float(value) if value is not None else None
    for key in ("context_window", "max_output_tokens"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise RegistryError(f"{where}: {key} must be a positive integer or null")
    caps = raw.get("capabilities") or {}
    if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
        raise RegistryError(f"{where}: capabilities must map names to true/false")
    quality = raw.get("quality")
    score, q_source = None, None
    if isinstance(quality, dict):
        score, q_source = quality.get("score"), quality.get("source")
    elif quality is not None:
        score = quality
    if score is not None and (not isinstance(score, _NUM) or isinstance(score, bool)):
        raise RegistryError(f"{where}: quality.score must be a number")
    aliases = raw.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise RegistryError(f"{where}: aliases must be a list of strings")
    known_caps = {k: v for k, v in caps.items() if k in Capabilities.__dataclass_fields__}
    return ModelEntry(
        id=raw["id"], provider=raw["provider"], provider_model=raw["provider_model"], **prices,
        context_window=raw.get("context_window"), max_output_tokens=raw.get("max_output_tokens"),
        capabilities=Capabilities(**known_caps), quality=float(score) if score is not None else None,
        quality_source=q_source, aliases=tuple(aliases), deprecated=bool(raw.get("deprecated", False)),
        source=raw.get("source"), updated_at=raw.get("updated_at"),
    )
