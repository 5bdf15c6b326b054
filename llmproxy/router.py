"""Route: which provider and model answer a request, in order (first is used, the rest are fallbacks).

An explicit name is honoured: a registry id or alias; `provider/model` for any model of a
configured provider (unknown to the registry: its cost is then unknown, never zero); a model an
openai-compatible provider declares. Its configured fallbacks follow it. Anything else is a 404.

"auto" (or auto:cost, auto:quality, auto:latency, auto:cascade, or the x-llmproxy-strategy header)
lets the router choose among the registry's models that can serve the request: those with the needed
capabilities, a large enough context window, credentials, and that the key may use; ordered by
the strategy against the quality floor of the request's complexity. "cascade" orders like "cost";
for a request the classifier is unsure about it also fills ctx.escalation with the next tier, which
cascade.py tries when the cheaper tier's answer fails its checks.
"""

from __future__ import annotations

from .config import DEFAULT_BASE_URLS, KEY_ENV, STRATEGIES, ProviderSettings, Settings
from .context import CHAT, COMPLETIONS, EMBEDDINGS, ChatRequest, RequestContext, model_allowed
from .errors import GatewayError, InvalidRequest, ModelNotFound
from .breakers import Candidate, Health
from .registry import ModelEntry, Registry

CASCADE_TIERS = {"simple": ("simple", "medium"), "medium": ("medium", "complex"), "complex": ("medium", "complex")}


def cascade_tiers(label: str) -> tuple[str, str]:
    """(first tier, escalation tier) for an unsure prediction: the cheaper of the two plausible tiers first."""
    return CASCADE_TIERS.get(label, ("medium", "complex"))


AUTO = "auto"
CASCADE = "cascade"
AUTO_NAMES = (AUTO, *(f"{AUTO}:{s}" for s in STRATEGIES))
_CHARS_PER_TOKEN = 4  # a cheap, deliberately generous prompt-size estimate; no tokenizer on the hot path
_SINGLE_CHOICE = frozenset({"anthropic"})  # the Messages API has no `n`; its adapter refuses n > 1
# The registry modes each client API may be served by (a chat model answers legacy completions
# through the chat translation); an ad-hoc model's mode is unknown (None) and may serve any.
MODES = {CHAT: ("chat",), COMPLETIONS: ("chat", "completion"), EMBEDDINGS: ("embedding",)}


def is_auto(name: str) -> bool:
    return name == AUTO or name.startswith("auto:")


class Resolutions:
    """Explicit model names already resolved against one registry and one settings object: most
    traffic repeats a few names, and resolving is pure. Bounded; starts over when either changes."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._registry: Registry | None = None
        self._settings: Settings | None = None
        self._known: dict[str, tuple[Candidate, ...]] = {}

    def get(self, name: str, registry: Registry, settings: Settings, endpoint: str = CHAT) -> tuple[Candidate, ...]:
        if registry is not self._registry or settings is not self._settings or len(self._known) >= self.size:
            self._registry, self._settings, self._known = registry, settings, {}
        key = name if endpoint == CHAT else f"{endpoint} {name}"
        found = self._known.get(key)
        if found is None:
            found = self._known[key] = tuple(_explicit(name, registry, settings, endpoint))
        return found


def route(
    ctx: RequestContext, registry: Registry, settings: Settings, health: Health, resolutions: Resolutions | None = None
) -> None:
    """The route stage: fill ctx.candidates (and ctx.strategy for auto requests)."""
    name = ctx.requested_model
    if not is_auto(name):
        candidates = (
            resolutions.get(name, registry, settings, ctx.endpoint)
            if resolutions is not None
            else _explicit(name, registry, settings, ctx.endpoint)
        )
        if len(candidates) > 1:
            candidates = health.order(candidates)[: max(1, settings.router.max_attempts)]
        ctx.candidates = list(candidates)
        return
    ctx.strategy = _strategy(ctx, settings)
    allowed = ctx.principal.allowed_models if ctx.principal else None
    max_price = _max_price(ctx)
    modes = MODES[ctx.endpoint]
    if ctx.strategy == CASCADE and not ctx.complexity_confident and ctx.complexity is not None:
        first, then = cascade_tiers(ctx.complexity)
        cheap = choose(
            ctx.body,
            registry,
            settings,
            health,
            strategy="cost",
            label=first,
            allowed=allowed,
            max_price=max_price,
            modes=modes,
        )
        floor = cheap[0][1].quality or 0.0
        ctx.escalation = [
            c
            for c in choose(
                ctx.body,
                registry,
                settings,
                health,
                strategy="cost",
                label=then,
                allowed=allowed,
                max_price=max_price,
                modes=modes,
            )
            if (c[1].quality or 0.0) > floor
        ]
        if ctx.escalation:  # the cheaper tier's own fallbacks stay below the next tier
            stronger = {c[1].id for c in ctx.escalation}
            ctx.candidates = [c for c in cheap if c[1].id not in stronger]
            return
    ctx.candidates = choose(
        ctx.body,
        registry,
        settings,
        health,
        strategy=ctx.strategy,
        label=ctx.complexity if ctx.complexity_confident else settings.router.unsure_label,
        allowed=allowed,
        max_price=max_price,
        modes=modes,
    )


def _explicit(name: str, registry: Registry, settings: Settings, endpoint: str = CHAT) -> list[Candidate]:
    modes = MODES[endpoint]
    candidates = resolve(name, registry, settings)
    mode = candidates[0][1].mode
    if mode is not None and mode not in modes:
        raise wrong_mode(name, candidates[0][1], endpoint, registry)
    for fallback in settings.router.fallbacks.get(name, ()):
        try:
            more = resolve(fallback, registry, settings)
        except GatewayError:
            continue  # a fallback that cannot be used now is skipped, not an error for the caller
        # only to a model of the same kind: an embedding model never stands in for a chat model
        candidates += [c for c in more if c[1].mode is None or c[1].mode in modes]
    return candidates


def wrong_mode(name: str, entry: ModelEntry, endpoint: str, registry: Registry) -> InvalidRequest:
    """The 400 for a model asked for through an API it does not serve, saying where it belongs."""
    if entry.mode == "embedding":
        why = "is an embedding model; send it to POST /v1/embeddings"
    elif entry.mode == "completion":
        why = "serves only the legacy completions API; send it to POST /v1/completions"
    else:
        served = sorted(m.id for m in registry.models if m.mode == "embedding" and not m.deprecated)
        why = (
            f"is a chat model ({entry.provider} serves no embeddings for it); POST /v1/embeddings needs an "
            f"embedding model" + (f", such as {', '.join(served[:4])}" if served else "")
        )
    return InvalidRequest(f"the model '{name}' {why}", code="model_not_supported", param="model")


def choose(
    body: ChatRequest,
    registry: Registry,
    settings: Settings,
    health: Health,
    *,
    strategy: str,
    label: str | None,
    allowed: tuple[str, ...] | None = None,
    max_price: float | None = None,
    modes: tuple[str, ...] = MODES[CHAT],
) -> list[Candidate]:
    need = requirements(body, settings.router.expected_output_tokens)
    need.modes = modes
    pool: list[Candidate] = []
    dropped: dict[str, int] = {}
    for entry in registry.models:
        reason = _unfit(entry, need, settings, allowed)
        if reason is None:
            provider = ready_provider(settings, entry.provider)
            if provider is not None:
                pool.append((provider, entry))
                continue
            reason = "no provider credentials"
        dropped[reason] = dropped.get(reason, 0) + 1
    if not pool:
        why = "; ".join(f"{n} {'model' if n == 1 else 'models'}: {r}" for r, n in sorted(dropped.items()))
        raise InvalidRequest(
            f"no model can serve this request ({why or 'the registry is empty'})",
            code="no_model_available",
            param="model",
        )
    floor = settings.router.floors.get(label or "medium", 0.0)
    meets = [c for c in pool if (c[1].quality or 0.0) >= floor]
    rest = [c for c in pool if (c[1].quality or 0.0) < floor]
    if strategy == "quality":
        within = [c for c in pool if max_price is None or blended_price(c[1]) <= max_price] or pool
        ordered = sorted(within, key=lambda c: (-(c[1].quality or 0.0), blended_price(c[1])))
    elif strategy == "latency":

        def latency(c: Candidate) -> float:
            seen = health.latency_s.get(c[1].id)
            return seen if seen is not None else 1.0  # unseen models get a neutral prior, so they get tried

        ordered = sorted(meets, key=lambda c: (latency(c), estimated_cost(c[1], need))) + sorted(
            rest, key=lambda c: -(c[1].quality or 0.0)
        )
    else:
        # cheapest that meets the floor; if none does, the best of the rest (quality beats price then)
        ordered = sorted(meets, key=lambda c: (estimated_cost(c[1], need), -(c[1].quality or 0.0))) + sorted(
            rest, key=lambda c: -(c[1].quality or 0.0)
        )
    return health.order(_one_per_model(ordered))[: max(1, settings.router.max_attempts)]


class Needs:
    __slots__ = ("tools", "vision", "json_schema", "prompt_tokens", "output_tokens", "stream", "choices", "modes")

    def __init__(
        self,
        tools: bool,
        vision: bool,
        json_schema: bool,
        prompt_tokens: int,
        output_tokens: int,
        stream: bool,
        choices: int = 1,
    ) -> None:
        self.tools, self.vision, self.json_schema = tools, vision, json_schema
        self.prompt_tokens, self.output_tokens, self.stream = prompt_tokens, output_tokens, stream
        self.choices = choices
        self.modes: tuple[str, ...] = MODES[CHAT]


def requirements(body: ChatRequest, default_output: int) -> Needs:
    chars, vision = 0, False
    for message in body.get("messages", ()):
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    chars += len(part.get("text") or "")
                elif part.get("type") in ("image_url", "input_image"):
                    vision = True
    fmt = body.get("response_format")
    json_schema = isinstance(fmt, dict) and fmt.get("type") == "json_schema"
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    output = requested if isinstance(requested, int) else default_output
    n = body.get("n")
    return Needs(
        bool(body.get("tools")),
        vision,
        json_schema,
        chars // _CHARS_PER_TOKEN,
        output,
        body.get("stream") is True,
        n if isinstance(n, int) else 1,
    )


def _unfit(entry: ModelEntry, need: Needs, settings: Settings, allowed: tuple[str, ...] | None) -> str | None:
    caps = entry.capabilities
    if entry.deprecated:
        return "deprecated"
    if entry.mode is not None and entry.mode not in need.modes:
        return f"{entry.mode} model" if entry.mode != "chat" else "chat model"
    if not entry.priced:
        return "price unknown"
    if allowed is not None and not entry_allowed(entry, allowed):
        return "not allowed for this key"
    if need.tools and not caps.tools:
        return "no tool calling"
    if need.vision and not caps.vision:
        return "no image input"
    if need.json_schema and not caps.json_schema:
        return "no JSON schema output"
    if need.stream and not caps.streaming:
        return "no streaming"
    if need.choices > 1 and entry.provider in _SINGLE_CHOICE:
        return "no n > 1"
    if entry.context_window and need.prompt_tokens + need.output_tokens > entry.context_window:
        return "context window too small"
    if entry.max_output_tokens and need.output_tokens > entry.max_output_tokens:
        return "max output too small"
    return None


def entry_allowed(entry: ModelEntry, allowed: tuple[str, ...]) -> bool:
    return any(model_allowed(name, allowed) for name in (entry.id, *entry.aliases))


def blended_price(entry: ModelEntry) -> float:
    """USD per million tokens at a 3:1 input:output mix, the usual way to compare list prices."""
    return (3 * (entry.input_per_mtok or 0.0) + (entry.output_per_mtok or 0.0)) / 4


def estimated_cost(entry: ModelEntry, need: Needs) -> float:
    return need.prompt_tokens * (entry.input_per_mtok or 0.0) + need.output_tokens * (entry.output_per_mtok or 0.0)


def _one_per_model(candidates: list[Candidate]) -> list[Candidate]:
    seen: set[str] = set()
    out = []
    for c in candidates:
        if c[1].id not in seen:
            seen.add(c[1].id)
            out.append(c)
    return out


def _strategy(ctx: RequestContext, settings: Settings) -> str:
    name = ctx.requested_model
    if name.startswith("auto:"):
        strategy = name[5:]
        if strategy not in STRATEGIES:
            raise ModelNotFound(f"the model '{name}' does not exist; use one of {', '.join(AUTO_NAMES)}", param="model")
        return strategy
    header = ctx.client_headers.get("x-llmproxy-strategy")
    if header:
        if header not in STRATEGIES:
            raise InvalidRequest(
                f"x-llmproxy-strategy must be one of {', '.join(STRATEGIES)}, not {header!r}",
                param="x-llmproxy-strategy",
            )
        return header
    per_key = ctx.principal.strategy if ctx.principal is not None else None
    return per_key if per_key in STRATEGIES else settings.router.default_strategy


def _max_price(ctx: RequestContext) -> float | None:
    raw = ctx.client_headers.get("x-llmproxy-max-price")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidRequest(
            "x-llmproxy-max-price must be a number (USD per million tokens, 3:1 blend)", param="x-llmproxy-max-price"
        ) from None


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
    """An entry for a model the registry does not know: routable, price unknown, any endpoint may try it."""
    return ModelEntry(id=f"{provider.name}/{model}", provider=provider.name, provider_model=model, mode=None)


def _by_upstream_name(registry: Registry, provider: ProviderSettings, model: str) -> ModelEntry | None:
    entry = registry.lookup(model)
    if entry is not None and entry.provider == provider.kind:
        return entry
    for entry in registry.models:
        if entry.provider == provider.kind and entry.provider_model == model:
            return entry
    return None


def ready_provider(settings: Settings, name: str) -> ProviderSettings | None:
    """The provider if it can be called now. A first-party provider at its public address needs a
    key; one pointed elsewhere (a local mirror, a test server) may not."""
    provider = settings.provider(name)
    if provider is None:
        return None
    if provider.api_key is None and provider.base_url == DEFAULT_BASE_URLS.get(provider.kind):
        return None
    return provider


def _usable(settings: Settings, provider_name: str, requested: str) -> ProviderSettings:
    provider = ready_provider(settings, provider_name)
    if provider is not None:
        return provider
    if settings.provider(provider_name) is None:
        raise InvalidRequest(
            f"the model '{requested}' belongs to provider '{provider_name}', which this gateway does not configure",
            code="provider_not_configured",
            param="model",
        )
    env = " or ".join(KEY_ENV.get(provider_name, ()))
    raise InvalidRequest(
        f"the model '{requested}' needs provider '{provider_name}', which has no API key "
        f"configured on this gateway (set {env})",
        code="provider_not_configured",
        param="model",
    )


def list_models(registry: Registry, settings: Settings) -> list[dict[str, object]]:
    """GET /v1/models data: auto and its strategies, the registry's models, the compatible providers'."""
    out: list[dict[str, object]] = [
        {"id": name, "object": "model", "created": 0, "owned_by": "llmproxy"} for name in AUTO_NAMES
    ]
    for entry in registry.models:
        item: dict[str, object] = {"id": entry.id, "object": "model", "created": 0, "owned_by": entry.provider}
        if not entry.priced:
            item["pricing"] = "unknown"
        out.append(item)
    for provider in settings.providers:
        for model in provider.models:
            out.append({"id": model, "object": "model", "created": 0, "owned_by": provider.name, "pricing": "unknown"})
    return out
