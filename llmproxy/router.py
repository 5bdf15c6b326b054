"""Route: which provider and model answer a request, in order (first is used, the rest are fallbacks).

A name is resolved as: a registry id or alias; `provider/model` for any model of a configured
provider (unknown to the registry: its cost is then unknown, never zero); a model that an
openai-compatible provider declares in the config. Anything else is a 404 with a suggestion.
"""
from __future__ import annotations

from .config import DEFAULT_BASE_URLS, KEY_ENV, ProviderSettings, Settings
from .context import RequestContext
from .errors import InvalidRequest, ModelNotFound
from .registry import ModelEntry, Registry

Candidate = tuple[ProviderSettings, ModelEntry]


def route(ctx: RequestContext, registry: Registry, settings: Settings) -> None:
    """The route stage: fill ctx.candidates for the requested model."""
    ctx.candidates = resolve(ctx.requested_model, registry, settings)


def resolve(name: str, registry: Registry, settings: Settings) -> list[Candidate]:
    entry = registry.lookup(name)
    if entry is not None:
        return [(_usable(settings, entry.provider, name), entry)]
    provider_name, sep, upstream_name = name.partition("/")
    provider = settings.provider(provider_name) if sep else None
    if provider is not None and upstream_name:
        known = _by_upstream_name(registry, provider, upstream_name)
        return [(_usable(settings, provider.name, name), known or adhoc_entry(provider, upstream_name))]
    for provider in settings.providers:
        if name in provider.models:
            return [(provider, adhoc_entry(provider, name))]
    hint = registry.suggest(name)
    tip = f"; did you mean '{hint}'?" if hint else "; GET /v1/models lists the models this gateway serves"
    raise ModelNotFound(f"the model '{name}' does not exist{tip}", param="model")


def adhoc_entry(provider: ProviderSettings, model: str) -> ModelEntry:
    """An entry for a model the registry does not know: routable, price unknown."""
    return ModelEntry(id=f"{provider.name}/{model}", provider=provider.name, provider_model=model)


def _by_upstream_name(registry: Registry, provider: ProviderSettings, model: str) -> ModelEntry | None:
    entry = registry.lookup(model)
    if entry is not None and entry.provider == provider.kind:
        return entry
    for entry in registry.models:
        if entry.provider == provider.kind and entry.provider_model == model:
            return entry
    return None


def _usable(settings: Settings, provider_name: str, requested: str) -> ProviderSettings:
    provider = settings.provider(provider_name)
    if provider is None:
        raise InvalidRequest(f"the model '{requested}' belongs to provider '{provider_name}', "
                             "which this gateway does not configure", code="provider_not_configured", param="model")
    # A first-party provider at its public address needs a key; one pointed elsewhere (a local
    # mirror, a test server) may not.
    if provider.api_key is None and provider.base_url == DEFAULT_BASE_URLS.get(provider.kind):
        env = " or ".join(KEY_ENV.get(provider.kind, ()))
        raise InvalidRequest(f"the model '{requested}' needs provider '{provider.name}', which has no API key "
                             f"configured on this gateway (set {env})", code="provider_not_configured", param="model")
    return provider


def list_models(registry: Registry, settings: Settings) -> list[dict[str, object]]:
    """GET /v1/models data: the registry's models and the ones compatible providers declare."""
    created = 0
    out: list[dict[str, object]] = []
    for entry in registry.models:
        item: dict[str, object] = {"id": entry.id, "object": "model", "created": created, "owned_by": entry.provider}
        if not entry.priced:
            item["pricing"] = "unknown"
        out.append(item)
    for provider in settings.providers:
        for model in provider.models:
            out.append({"id": model, "object": "model", "created": created, "owned_by": provider.name,
                        "pricing": "unknown"})
    return out

