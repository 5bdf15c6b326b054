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
    name: str                       # how requests and /v1/models name it ("openai", "ollama", ...)
    kind: str                       # one of PROVIDER_KINDS: which adapter speaks to it
    base_url: str
    api_key: Secret | None = None
    models: tuple[str, ...] = ()    # models an openai-compatible server offers, routable by bare name
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 600.0        # whole request, as the official SDKs default
    connect_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    registry_path: Path = Path("registry") / "models.json"   # falls back to the shipped copy
    master_key: Secret | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    providers: tuple[ProviderSettings, ...] = ()
    log_level: str = "info"
    log_format: str = "json"        # "json" (one line per request) or "text" for a terminal
    log_payloads: bool = False      # prompts and completions stay out of logs unless enabled
    drain_timeout_s: float = 30.0
    usage_flush_interval_s: float = 0.25
    usage_batch_size: int = 500
    usage_queue_max: int = 100_000

    def provider(self, name: str) -> ProviderSettings | None:
        for p in self.providers:
            if p.name == name:
                return p
        return None


_SERVER_KEYS = {"host": str, "port": int, "data_dir": str, "master_key": str, "max_body_bytes": int,
                "drain_timeout_s": float}
_LOGGING_KEYS = {"level": str, "format": str, "payloads": bool}
_REGISTRY_KEYS = {"path": str}
_USAGE_KEYS = {"flush_interval_s": float, "batch_size": int, "queue_max": int}
_PROVIDER_KEYS = {"kind": str, "base_url": str, "api_key": str, "api_key_env": str, "models": list,
                  "headers": dict, "timeout_s": float, "connect_timeout_s": float}


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
    unknown = set(doc) - {"server", "logging", "registry", "usage", "providers"}
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
        log_payloads=_bool(env.get("LLMPROXY_LOG_PAYLOADS")) if env.get("LLMPROXY_LOG_PAYLOADS")
        else logging_.get("payloads", False),
        drain_timeout_s=server.get("drain_timeout_s", defaults.drain_timeout_s),
        usage_flush_interval_s=usage.get("flush_interval_s", defaults.usage_flush_interval_s),
        usage_batch_size=usage.get("batch_size", defaults.usage_batch_size),
        usage_queue_max=usage.get("queue_max", defaults.usage_queue_max),
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
        models = raw.get("models", [])
        if not all(isinstance(m, str) for m in models):
            raise ConfigError(f"providers.{name}.models must be a list of model names")
        result.append(ProviderSettings(
            name=name, kind=kind, base_url=base_url.rstrip("/"), api_key=Secret(key) if key else None,
            models=tuple(models), headers={str(k): str(v) for k, v in raw.get("headers", {}).items()},
            timeout_s=float(raw.get("timeout_s", 600.0)), connect_timeout_s=float(raw.get("connect_timeout_s", 10.0)),
        ))
    return tuple(result)


def _section(doc: Mapping[str, Any], name: str, keys: Mapping[str, type], *, label: str | None = None) -> dict[str, Any]:
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
