"""The layout of llmproxy.toml: the keys each section accepts and the TOML type of each value.

config.py checks a file against these tables before it builds the settings, so an unknown key or a
value of the wrong type fails at startup, naming it. A new setting adds its key here and its field
in settings.py.
"""

from __future__ import annotations

SERVER_KEYS = {
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
EDGE_KEYS = (
    "max_admin_body_bytes",
    "max_header_bytes",
    "max_headers",
    "head_timeout_s",
    "read_timeout_s",
    "max_concurrency",
    "max_connections",
)
LOGGING_KEYS = {"level": str, "format": str, "payloads": bool}
REGISTRY_KEYS = {
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
USAGE_KEYS = {"flush_interval_s": float, "batch_size": int, "queue_max": int, "retention_days": float}
AUTH_KEYS = {
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
LIMITS_KEYS = {"rpm": int, "tpm": int}
CACHE_KEYS = {
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
CACHE_KEY_KEYS = {"enabled": bool, "ttl_s": float, "temperature_above_zero": bool}
REDIS_KEYS = {"url": str, "timeout_s": float, "heartbeat_s": float, "fallback_processes": int, "key_prefix": str}
PROVIDER_KEYS = {
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
ROUTER_KEYS = {
    "default_strategy": str,
    "floors": dict,
    "unsure_label": str,
    "expected_output_tokens": int,
    "max_attempts": int,
    "fallbacks": dict,
    "breaker_failures": int,
    "breaker_cooldown_s": float,
}
