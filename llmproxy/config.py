"""Settings: one frozen tree read once from llmproxy.toml and the environment (env > file > default).

This is the only module that reads the environment or the config file: it checks the file against
its layout (config_keys.py), validates each value and builds the tree (the dataclasses of
settings.py). Unknown keys in the file fail at startup, naming the key, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config_keys import (
    AUTH_KEYS,
    CACHE_KEYS,
    CACHE_KEY_KEYS,
    EDGE_KEYS,
    LIMITS_KEYS,
    LOGGING_KEYS,
    PROVIDER_KEYS,
    REDIS_KEYS,
    REGISTRY_KEYS,
    ROUTER_KEYS,
    SERVER_KEYS,
    USAGE_KEYS,
)

# The settings tree is defined in settings.py, its one home; it is re-exported here because the code
# base imports every setting from config (`from llmproxy.config import Settings`).
from .settings import (
    AuthSettings as AuthSettings,
    CacheKeySettings as CacheKeySettings,
    CacheSettings as CacheSettings,
    DatabaseSettings as DatabaseSettings,
    LimitSettings as LimitSettings,
    ProviderSettings as ProviderSettings,
    RedisSettings as RedisSettings,
    RegistryUpdateSettings as RegistryUpdateSettings,
    RouterSettings as RouterSettings,
    Secret as Secret,
    Settings as Settings,
)

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
    server = _section(doc, "server", SERVER_KEYS)
    logging_ = _section(doc, "logging", LOGGING_KEYS)
    registry = _section(doc, "registry", REGISTRY_KEYS)
    usage = _section(doc, "usage", USAGE_KEYS)

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
        auth=_auth(_section(doc, "auth", AUTH_KEYS), env),
        limits=LimitSettings(**_section(doc, "limits", LIMITS_KEYS)),
        router=_router(_section(doc, "router", ROUTER_KEYS)),
        cache=_cache(_section(doc, "cache", CACHE_KEYS), env),
        registry_update=_registry_update(registry, env),
        database=_database(_section(doc, "database", {"url": str, "pool_size": int}), env),
        redis=_redis(_section(doc, "redis", REDIS_KEYS), env),
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
    for name in EDGE_KEYS:
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
        raw = _section(section, name, PROVIDER_KEYS, label=f"providers.{name}")
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
        str(key_id): CacheKeySettings(**_section({key_id: table}, key_id, CACHE_KEY_KEYS, label=f"cache.keys.{key_id}"))
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
