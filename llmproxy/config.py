"""Settings: one frozen tree read once from llmproxy.toml and the environment (env > file > default).

This is the only module that reads the environment or the config file. Unknown keys in the file
fail at startup, naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROVIDER_KINDS = ("openai", "anthropic", "gemini", "openai-compatible")

# The official SDKs' conventions: OpenAI's base ends in /v1, Anthropic's and Gemini's are the bare
# host and each call's path carries the API version.
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
KEY_ENV = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}


class ConfigError(ValueError):
    """A setting is missing, malformed or unknown; the message names it."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret string whose repr shows a short prefix only."""

    value: str

    def __repr__(self) -> str:
        return f"Secret({self.value[:4]!r}…)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str  # how requests and /v1/models name it ("openai", "ollama", ...)
    kind: str  # one of PROVIDER_KINDS: which adapter speaks to it
    base_url: str
    api_key: Secret | None = None
    models: tuple[str, ...] = ()  # models an openai-compatible server offers, routable by bare name
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 600.0  # whole request, as the official SDKs default
    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float | None = None  # a stream's wait for its first event; None: timeout_s
    stream_idle_timeout_s: float | None = None  # silence between two reads of a stream; None: timeout_s
    stream_timeout_s: float | None = None  # a whole stream; None: no bound but the idle timeout


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """[auth]: the vault key, login tokens, key rotation and an external JWT identity provider."""

    secret_key: Secret | None = None  # LLMPROXY_SECRET_KEY; else a key file made on first start
    secret_key_file: Path | None = None  # default <data_dir>/secret.key
    login_ttl_s: float = 900.0  # POST /admin/login access tokens
    rotation_grace_s: float = 3600.0  # how long a rotated key's old value keeps working
    sync_interval_s: float = 1.0  # how often the gateway looks for CLI changes in the database
    max_keys_per_owner: int = 100  # live keys one owner may hold (POST /admin/keys answers 409 past it)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_secret: Secret | None = None  # HS256 (LLMPROXY_JWT_SECRET)
    jwt_public_key: str | None = None  # PEM text (RS256 or ES256), read from jwt_public_key_file
    jwt_jwks: str | None = None  # JWKS JSON text, read from jwt_jwks_file
    jwt_algorithms: tuple[str, ...] = ()  # default: the one the key kind implies
    jwt_leeway_s: float = 30.0
    jwt_role_claim: str = "role"


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """[limits]: the default requests/min and tokens/min of a key or JWT user without its own."""

    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class CacheKeySettings:
    """[cache.keys."<key id>"]: one key's own cache policy; None follows [cache]."""

    enabled: bool | None = None
    ttl_s: float | None = None
    temperature_above_zero: bool | None = None  # True: this key's every request may be cached


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """[cache]: the exact-match response cache (memory LRU in front of SQLite in the data dir)."""

    enabled: bool = True
    ttl_s: float = 3600.0
    max_ttl_s: float = 7 * 86400.0  # the most a request's x-llmproxy-cache-ttl can ask for
    max_memory_bytes: int = 64 * 1024 * 1024
    max_disk_bytes: int = 1024 * 1024 * 1024
    max_entry_bytes: int = 1024 * 1024  # larger answers are not cached
    # By default only a request that asks for a deterministic answer (temperature 0, or a seed) is
    # cached: apps that sample several answers at temperature > 0 must get different ones. True
    # caches every request; a caller asks for that per request (Cache-Control: max-age=N or
    # x-llmproxy-cache: on), a key by its own [cache.keys."<id>"] temperature_above_zero.
    temperature_above_zero: bool = False
    scope: str = "key"  # "key" (per API key), "user", or "shared" by all callers
    persist: bool = True  # False: memory only
    max_write_queue_bytes: int = 8 * 1024 * 1024  # answers waiting for the disk; past it, writes are shed
    keys: Mapping[str, CacheKeySettings] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """How "auto" picks a model; the quality floors are on the registry's quality scale (0-100)."""

    default_strategy: str = "cost"
    floors: Mapping[str, float] = field(default_factory=lambda: {"simple": 20.0, "medium": 40.0, "complex": 55.0})
    unsure_label: str = "medium"  # what an unsure classifier's request is treated as
    expected_output_tokens: int = 500  # for cost estimates when max_tokens is not given
    max_attempts: int = 3  # candidates tried per request, fallbacks included
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # explicit model -> fallbacks
    breaker_failures: int = 5  # consecutive retryable failures that open a provider's breaker
    breaker_cooldown_s: float = 30.0


@dataclass(frozen=True, slots=True)
class RegistryUpdateSettings:
    """[registry]: keeping models.json current from the providers' pricing pages (see README)."""

    auto_update: bool = True  # run the scrapers on `cron` inside the gateway
    cron: str = "17 4 * * *"  # croniter expression, UTC; default daily at 04:17
    pages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # provider -> pricing page URLs
    max_model_loss: float = 0.34  # a scrape dropping more of a provider's listed models is held back
    max_price_factor: float = 4.0  # a scrape moving a price by more than this factor is held back
    keep_versions: int = 365  # copies kept under versions/; 0 keeps them all
    scrape_timeout_s: float = 60.0  # per provider
    watch_interval_s: float = 15.0  # how often a gateway looks for a models.json written elsewhere


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """[redis]: shared state for several processes or machines (limits, budgets, the cache's shared
    tier, breakers, notifications). No url: everything stays in this process, as before."""

    url: Secret | None = None  # LLMPROXY_REDIS_URL, e.g. redis://redis:6379/0 (may hold a password)
    timeout_s: float = 0.5  # a command's wait; past it Redis counts as down for this request
    heartbeat_s: float = 1.0  # liveness beat, and the probe that notices Redis is back
    fallback_processes: int | None = None  # with Redis down, limits are divided by this; None: the live count seen
    key_prefix: str = "llmproxy:"  # one Redis can serve several deployments


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """[database]: the shared database of a deployment of several processes (docs/postgresql.md).
    No URL: the embedded SQLite file in the data directory, as for one process."""

    url: Secret | None = None  # LLMPROXY_DATABASE_URL: postgresql://user:password@host:port/db
    pool_size: int = 10  # connections each gateway process holds at most


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    registry_path: Path = Path("registry") / "models.json"  # falls back to the shipped copy
    master_key: Secret | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    # Edge limits (guard.py, serving.py): what one request or connection may hold of the gateway.
    max_admin_body_bytes: int = 64 * 1024  # /admin bodies are small JSON documents
    max_header_bytes: int = 32 * 1024  # names and values of one request's headers, together
    max_headers: int = 100
    head_timeout_s: float = 10.0  # a connection's time to send a whole request head (serve)
    read_timeout_s: float = 15.0  # the longest silence while a request body is read
    max_concurrency: int = 1024  # requests (streams included) in flight; more get 503
    max_connections: int = 2048  # open connections (serve); more are answered 503
    providers: tuple[ProviderSettings, ...] = ()
    log_level: str = "info"
    log_format: str = "json"  # "json" (one line per request) or "text" for a terminal
    log_payloads: bool = False  # prompts and completions stay out of logs unless enabled
    drain_timeout_s: float = 30.0
    usage_flush_interval_s: float = 0.25
    usage_batch_size: int = 500
    usage_queue_max: int = 100_000
    usage_retention_days: float = 90.0  # raw usage rows older than this are deleted; 0 keeps them all
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    registry_update: RegistryUpdateSettings = field(default_factory=RegistryUpdateSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)

    def provider(self, name: str) -> ProviderSettings | None:
        for p in self.providers:
            if p.name == name:
                return p
        return None


_SERVER_KEYS = {
    "host": str,
    "port": int,
    "data_dir": str,
    "master_key": str,
    "max_body_bytes": int,
    "drain_timeout_s": float,
    "max_admin_body_bytes": int,
    "max_header_bytes": int,
    "max_headers": int,
    "head_timeout_s": float,
    "read_timeout_s": float,
    "max_concurrency": int,
    "max_connections": int,
}
_EDGE_KEYS = (
    "max_admin_body_bytes",
    "max_header_bytes",
    "max_headers",
    "head_timeout_s",
    "read_timeout_s",
    "max_concurrency",
    "max_connections",
)
_LOGGING_KEYS = {"level": str, "format": str, "payloads": bool}
_REGISTRY_KEYS = {
    "path": str,
    "auto_update": bool,
    "cron": str,
    "pages": dict,
    "max_model_loss": float,
    "max_price_factor": float,
    "keep_versions": int,
    "scrape_timeout_s": float,
    "watch_interval_s": float,
}
_USAGE_KEYS = {"flush_interval_s": float, "batch_size": int, "queue_max": int, "retention_days": float}
_AUTH_KEYS = {
    "secret_key_file": str,
    "login_ttl_s": float,
    "rotation_grace_s": float,
    "sync_interval_s": float,
    "jwt_issuer": str,
    "jwt_audience": str,
    "jwt_secret": str,
    "jwt_public_key_file": str,
    "jwt_jwks_file": str,
    "jwt_algorithms": list,
    "jwt_leeway_s": float,
    "jwt_role_claim": str,
    "max_keys_per_owner": int,
}
_LIMITS_KEYS = {"rpm": int, "tpm": int}
_CACHE_KEYS = {
    "enabled": bool,
    "ttl_s": float,
    "max_ttl_s": float,
    "max_memory_bytes": int,
    "max_disk_bytes": int,
    "max_entry_bytes": int,
    "temperature_above_zero": bool,
    "scope": str,
    "persist": bool,
    "keys": dict,
    "max_write_queue_bytes": int,
}
_CACHE_KEY_KEYS = {"enabled": bool, "ttl_s": float, "temperature_above_zero": bool}
_REDIS_KEYS = {"url": str, "timeout_s": float, "heartbeat_s": float, "fallback_processes": int, "key_prefix": str}
_PROVIDER_KEYS = {
    "kind": str,
    "base_url": str,
    "api_key": str,
    "api_key_env": str,
    "models": list,
    "headers": dict,
    "timeout_s": float,
    "connect_timeout_s": float,
    "first_byte_timeout_s": float,
    "stream_idle_timeout_s": float,
    "stream_timeout_s": float,
}


def load_settings(path: str | Path | None, env: Mapping[str, str]) -> Settings:
    """Settings from an optional TOML file and the environment. `path` None means LLMPROXY_CONFIG,
    else ./llmproxy.toml when it exists, else defaults only."""
    file_path = Path(path) if path else (Path(env["LLMPROXY_CONFIG"]) if env.get("LLMPROXY_CONFIG") else None)
    if file_path is None and Path("llmproxy.toml").is_file():
        file_path = Path("llmproxy.toml")
    doc: dict[str, Any] = {}
    if file_path is not None:
        try:
            doc = tomllib.loads(file_path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {file_path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file_path} is not valid TOML: {exc}") from None
    unknown = set(doc) - {
        "server",
        "logging",
        "registry",
        "usage",
        "providers",
        "auth",
        "limits",
        "router",
        "cache",
        "database",
        "redis",
    }
    if unknown:
        raise ConfigError(f"unknown section [{sorted(unknown)[0]}] in {file_path}")
    server = _section(doc, "server", _SERVER_KEYS)
    logging_ = _section(doc, "logging", _LOGGING_KEYS)
    registry = _section(doc, "registry", _REGISTRY_KEYS)
    usage = _section(doc, "usage", _USAGE_KEYS)

    defaults = Settings()
    master = env.get("LLMPROXY_MASTER_KEY") or server.get("master_key")
    log_format = env.get("LLMPROXY_LOG_FORMAT") or logging_.get("format", defaults.log_format)
    if log_format not in ("json", "text"):
        raise ConfigError(f"log format must be 'json' or 'text', not {log_format!r}")
    return Settings(
        host=env.get("LLMPROXY_HOST") or server.get("host", defaults.host),
        port=_int(env.get("LLMPROXY_PORT"), "LLMPROXY_PORT") or server.get("port", defaults.port),
        data_dir=Path(env.get("LLMPROXY_DATA_DIR") or server.get("data_dir", defaults.data_dir)),
        registry_path=Path(env.get("LLMPROXY_REGISTRY") or registry.get("path", defaults.registry_path)),
        master_key=Secret(master) if master else None,
        max_body_bytes=_int(env.get("LLMPROXY_MAX_BODY_BYTES"), "LLMPROXY_MAX_BODY_BYTES")
        or server.get("max_body_bytes", defaults.max_body_bytes),
        providers=_providers(doc.get("providers", {}), env),
        log_level=(env.get("LLMPROXY_LOG_LEVEL") or logging_.get("level", defaults.log_level)).lower(),
        log_format=log_format,
        log_payloads=_bool(payloads)
        if (payloads := env.get("LLMPROXY_LOG_PAYLOADS"))
        else logging_.get("payloads", False),
        drain_timeout_s=server.get("drain_timeout_s", defaults.drain_timeout_s),
        **_edge_limits(server),
        usage_flush_interval_s=usage.get("flush_interval_s", defaults.usage_flush_interval_s),
        usage_batch_size=usage.get("batch_size", defaults.usage_batch_size),
        usage_queue_max=usage.get("queue_max", defaults.usage_queue_max),
        usage_retention_days=float(usage.get("retention_days", defaults.usage_retention_days)),
        auth=_auth(_section(doc, "auth", _AUTH_KEYS), env),
        limits=LimitSettings(**_section(doc, "limits", _LIMITS_KEYS)),
        router=_router(_section(doc, "router", _ROUTER_KEYS)),
        cache=_cache(_section(doc, "cache", _CACHE_KEYS), env),
        registry_update=_registry_update(registry, env),
        database=_database(_section(doc, "database", {"url": str, "pool_size": int}), env),
        redis=_redis(_section(doc, "redis", _REDIS_KEYS), env),
    )


def _redis(raw: dict[str, Any], env: Mapping[str, str]) -> RedisSettings:
    """[redis] plus LLMPROXY_REDIS_URL (which wins)."""
    url = env.get("LLMPROXY_REDIS_URL") or raw.pop("url", None)
    raw.pop("url", None)
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("redis url must start with redis://, rediss:// or unix://")
    for name in ("timeout_s", "heartbeat_s", "fallback_processes"):
        if name in raw and not raw[name] > 0:
            raise ConfigError(f"redis.{name} must be more than 0")
    return RedisSettings(url=Secret(url) if url else None, **raw)


def _database(raw: Mapping[str, Any], env: Mapping[str, str]) -> DatabaseSettings:
    """[database] plus LLMPROXY_DATABASE_URL; only PostgreSQL URLs are taken."""
    url = env.get("LLMPROXY_DATABASE_URL") or raw.get("url")
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "database.url (LLMPROXY_DATABASE_URL) must be a postgresql:// URL; "
            "leave it unset for the embedded SQLite file"
        )
    pool_size = raw.get("pool_size", DatabaseSettings().pool_size)
    if pool_size < 1:
        raise ConfigError("database.pool_size must be 1 or more")
    return DatabaseSettings(url=Secret(url) if url else None, pool_size=pool_size)


def _edge_limits(server: Mapping[str, Any]) -> dict[str, Any]:
    """[server] limits on requests and connections; each must be positive."""
    out = {}
    for name in _EDGE_KEYS:
        if name in server:
            if server[name] <= 0:
                raise ConfigError(f"server.{name} must be positive")
            out[name] = server[name]
    return out


def _registry_update(raw: Mapping[str, Any], env: Mapping[str, str]) -> RegistryUpdateSettings:
    """[registry] minus `path`, plus LLMPROXY_REGISTRY_CRON and LLMPROXY_REGISTRY_AUTO_UPDATE."""
    from croniter import croniter  # the scheduler's parser: a bad expression fails here, at startup

    defaults = RegistryUpdateSettings()
    cron = env.get("LLMPROXY_REGISTRY_CRON") or raw.get("cron", defaults.cron)
    if not croniter.is_valid(cron):
        raise ConfigError(f"registry.cron is not a valid cron expression: {cron!r}")
    pages: dict[str, tuple[str, ...]] = {}
    for provider, urls in raw.get("pages", {}).items():
        urls = [urls] if isinstance(urls, str) else urls
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
            raise ConfigError(f"registry.pages.{provider} must be a URL or a list of URLs")
        pages[provider] = tuple(urls)
    auto = env.get("LLMPROXY_REGISTRY_AUTO_UPDATE")
    return RegistryUpdateSettings(
        auto_update=_bool(auto) if auto else raw.get("auto_update", defaults.auto_update),
        cron=cron,
        pages=pages,
        max_model_loss=float(raw.get("max_model_loss", defaults.max_model_loss)),
        max_price_factor=float(raw.get("max_price_factor", defaults.max_price_factor)),
        keep_versions=raw.get("keep_versions", defaults.keep_versions),
        scrape_timeout_s=float(raw.get("scrape_timeout_s", defaults.scrape_timeout_s)),
        watch_interval_s=float(raw.get("watch_interval_s", defaults.watch_interval_s)),
    )


def _auth(raw: Mapping[str, Any], env: Mapping[str, str]) -> AuthSettings:
    """[auth] plus LLMPROXY_SECRET_KEY / LLMPROXY_JWT_SECRET; key files are read here, once."""

    def text(key: str, var: str) -> str | None:
        path = env.get(var) or raw.get(key)
        if not path:
            return None
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"auth.{key}: cannot read {path}: {exc.strerror}") from None

    secret = env.get("LLMPROXY_SECRET_KEY")
    jwt_secret = env.get("LLMPROXY_JWT_SECRET") or raw.get("jwt_secret")
    key_file = env.get("LLMPROXY_SECRET_KEY_FILE") or raw.get("secret_key_file")
    algorithms = raw.get("jwt_algorithms", [])
    if not all(isinstance(a, str) for a in algorithms):
        raise ConfigError("auth.jwt_algorithms must be a list of algorithm names")
    defaults = AuthSettings()
    max_keys = raw.get("max_keys_per_owner", defaults.max_keys_per_owner)
    if max_keys < 1:
        raise ConfigError("auth.max_keys_per_owner must be 1 or more")
    return AuthSettings(
        secret_key=Secret(secret) if secret else None,
        secret_key_file=Path(key_file) if key_file else None,
        login_ttl_s=float(raw.get("login_ttl_s", defaults.login_ttl_s)),
        rotation_grace_s=float(raw.get("rotation_grace_s", defaults.rotation_grace_s)),
        sync_interval_s=float(raw.get("sync_interval_s", defaults.sync_interval_s)),
        max_keys_per_owner=max_keys,
        jwt_issuer=env.get("LLMPROXY_JWT_ISSUER") or raw.get("jwt_issuer"),
        jwt_audience=env.get("LLMPROXY_JWT_AUDIENCE") or raw.get("jwt_audience"),
        jwt_secret=Secret(jwt_secret) if jwt_secret else None,
        jwt_public_key=text("jwt_public_key_file", "LLMPROXY_JWT_PUBLIC_KEY_FILE"),
        jwt_jwks=text("jwt_jwks_file", "LLMPROXY_JWT_JWKS_FILE"),
        jwt_algorithms=tuple(algorithms),
        jwt_leeway_s=float(raw.get("jwt_leeway_s", defaults.jwt_leeway_s)),
        jwt_role_claim=raw.get("jwt_role_claim", defaults.jwt_role_claim),
    )


def _providers(section: Mapping[str, Any], env: Mapping[str, str]) -> tuple[ProviderSettings, ...]:
    """The three first-party providers always exist (usable once they have a key); the file may
    tune them and add any number of openai-compatible ones."""
    if not isinstance(section, Mapping):
        raise ConfigError("[providers] must be a table of provider tables")
    result: list[ProviderSettings] = []
    names = list(DEFAULT_BASE_URLS) + [n for n in section if n not in DEFAULT_BASE_URLS]
    for name in names:
        raw = _section(section, name, _PROVIDER_KEYS, label=f"providers.{name}")
        kind = raw.get("kind", name if name in DEFAULT_BASE_URLS else "openai-compatible")
        if kind not in PROVIDER_KINDS:
            raise ConfigError(f"providers.{name}.kind must be one of {', '.join(PROVIDER_KINDS)}, not {kind!r}")
        env_base = env.get(f"LLMPROXY_{name.upper().replace('-', '_')}_BASE_URL")
        base_url = env_base or raw.get("base_url") or DEFAULT_BASE_URLS.get(kind if name == kind else "", "")
        if not base_url:
            raise ConfigError(f"providers.{name} needs a base_url")
        key = None
        key_envs = (raw["api_key_env"],) if "api_key_env" in raw else KEY_ENV.get(name, ())
        for var in key_envs:
            if env.get(var):
                key = env[var]
                break
        key = key or raw.get("api_key")
        for timeout in (
            "timeout_s",
            "connect_timeout_s",
            "first_byte_timeout_s",
            "stream_idle_timeout_s",
            "stream_timeout_s",
        ):
            if timeout in raw and not raw[timeout] > 0:
                raise ConfigError(f"providers.{name}.{timeout} must be more than 0 seconds")
        models = raw.get("models", [])
        if not all(isinstance(m, str) for m in models):
            raise ConfigError(f"providers.{name}.models must be a list of model names")
        result.append(
            ProviderSettings(
                name=name,
                kind=kind,
                base_url=base_url.rstrip("/"),
                api_key=Secret(key) if key else None,
                models=tuple(models),
                headers={str(k): str(v) for k, v in raw.get("headers", {}).items()},
                timeout_s=float(raw.get("timeout_s", 600.0)),
                connect_timeout_s=float(raw.get("connect_timeout_s", 10.0)),
                **{
                    k: float(raw[k])
                    for k in ("first_byte_timeout_s", "stream_idle_timeout_s", "stream_timeout_s")
                    if k in raw
                },
            )
        )
    return tuple(result)


def _cache(raw: dict[str, Any], env: Mapping[str, str]) -> CacheSettings:
    """[cache] plus LLMPROXY_CACHE (on/off) and per-key tables [cache.keys."<key id>"]."""
    keys = {
        str(key_id): CacheKeySettings(
            **_section({key_id: table}, key_id, _CACHE_KEY_KEYS, label=f"cache.keys.{key_id}")
        )
        for key_id, table in raw.pop("keys", {}).items()
    }
    if raw.get("scope", "key") not in ("key", "user", "shared"):
        raise ConfigError("cache.scope must be 'key', 'user' or 'shared'")
    for name in (
        "ttl_s",
        "max_ttl_s",
        "max_memory_bytes",
        "max_disk_bytes",
        "max_entry_bytes",
        "max_write_queue_bytes",
    ):
        if name in raw and raw[name] < 0:
            raise ConfigError(f"cache.{name} must not be negative")
    if env.get("LLMPROXY_CACHE"):
        raw["enabled"] = _bool(env["LLMPROXY_CACHE"])
    return CacheSettings(**raw, keys=keys)


_ROUTER_KEYS = {
    "default_strategy": str,
    "floors": dict,
    "unsure_label": str,
    "expected_output_tokens": int,
    "max_attempts": int,
    "fallbacks": dict,
    "breaker_failures": int,
    "breaker_cooldown_s": float,
}
LABELS = ("simple", "medium", "complex")
STRATEGIES = ("cost", "quality", "latency", "cascade")  # cascade: see cascade.py


def _router(raw: dict[str, Any]) -> RouterSettings:
    if raw.get("default_strategy", "cost") not in STRATEGIES:
        raise ConfigError(f"router.default_strategy must be one of {', '.join(STRATEGIES)}")
    if raw.get("unsure_label", "medium") not in LABELS:
        raise ConfigError(f"router.unsure_label must be one of {', '.join(LABELS)}")
    floors = dict(RouterSettings().floors)
    for label, value in raw.pop("floors", {}).items():
        if label not in LABELS or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"router.floors.{label} must be a number, for one of {', '.join(LABELS)}")
        floors[label] = float(value)
    fallbacks = {}
    for model, chain in raw.pop("fallbacks", {}).items():
        if not isinstance(chain, list) or not all(isinstance(m, str) for m in chain):
            raise ConfigError(f"router.fallbacks.{model} must be a list of model names")
        fallbacks[model] = tuple(chain)
    return RouterSettings(floors=floors, fallbacks=fallbacks, **raw)


def _section(
    doc: Mapping[str, Any], name: str, keys: Mapping[str, type], *, label: str | None = None
) -> dict[str, Any]:
    label = label or name
    raw = doc.get(name, {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[{label}] must be a table")
    for key, value in raw.items():
        if key not in keys:
            raise ConfigError(f"unknown setting {label}.{key}")
        want = keys[key]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"{label}.{key} must be a {want.__name__}")
    return dict(raw)


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {value!r}") from None


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")
