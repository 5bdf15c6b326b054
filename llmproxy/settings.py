"""The settings tree: the frozen dataclasses that hold every setting, with the gateway's defaults.

config.py fills one `Settings` from llmproxy.toml and the environment (and alone reads them); every
other module is handed it and only reads it. `Secret` keeps keys and passwords out of reprs and logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


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
    kind: str  # one of config.PROVIDER_KINDS: which adapter speaks to it
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
    # The disk tier (SQLite in the data dir). None: on, unless Redis holds the cache's shared tier,
    # which then keeps answers across restarts and processes; a second copy on each process's disk
    # would cost every stored answer a write for little. True or False: as said.
    persist: bool | None = None
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
    usage_batch_size: int = 2000
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
