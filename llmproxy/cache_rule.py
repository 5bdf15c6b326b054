"""Which requests the response cache answers and keeps, and for how long: decided from the request
and its headers, in a few dict look-ups, before any key is computed.

By default only a request that asks for a deterministic answer (temperature 0, or a seed) is
cached: apps that sample several answers at temperature > 0 must get different ones. The caller
asks for more (Cache-Control: max-age=N, x-llmproxy-cache: on) or less (Cache-Control: no-store,
x-llmproxy-cache: off; no-cache: look nothing up, keep the new answer), and a key's own settings
([cache.keys."<id>"]) may say otherwise.
"""

from __future__ import annotations

from .config import CacheSettings
from .context import EMBEDDINGS, RequestContext
from .errors import InvalidRequest

TTL_HEADER = "x-llmproxy-cache-ttl"
SWITCH_HEADER = "x-llmproxy-cache"  # "on": cache this request whatever its temperature; "off": bypass

# (ttl_s, max_age: the oldest answer the caller accepts or None, no_cache: look nothing up)
Decision = tuple[float, "float | None", bool]


def decide(settings: CacheSettings, ctx: RequestContext) -> Decision | None:
    """What the cache may do for this request; None: nothing (bypassed). Raises InvalidRequest for
    a malformed x-llmproxy-cache or x-llmproxy-cache-ttl header."""
    s = settings
    principal = ctx.principal
    key_id = principal.key_id if principal is not None else None
    policy = s.keys.get(key_id) if s.keys and key_id else None
    if not (s.enabled if policy is None or policy.enabled is None else policy.enabled):
        return None
    body = ctx.body
    headers = ctx.client_headers
    asked = no_cache = False
    max_age = None
    if headers:
        switch = headers.get(SWITCH_HEADER)
        if switch is not None:
            switch = switch.strip().lower()
            if switch == "off":
                return None
            if switch != "on":
                raise InvalidRequest(f"{SWITCH_HEADER} must be 'on' or 'off', not {switch[:40]!r}", param=SWITCH_HEADER)
            asked = True
        control = headers.get("cache-control")
        if control:
            control = control.lower()
            if "no-store" in control:
                return None
            no_cache = "no-cache" in control
            max_age = _max_age(control)
            asked = asked or max_age is not None
    # Embeddings are deterministic: no temperature to wait for.
    if (
        not asked
        and ctx.endpoint != EMBEDDINGS
        and not (
            s.temperature_above_zero
            if policy is None or policy.temperature_above_zero is None
            else policy.temperature_above_zero
        )
    ):
        # Absent means the provider's default, which is 1 for OpenAI, Anthropic and Gemini.
        if body.get("temperature") != 0 and body.get("seed") is None:
            return None
    if body.get("logprobs") or "audio" in body:
        return None  # a replayed stream could not reproduce them
    ttl = policy.ttl_s if policy is not None and policy.ttl_s is not None else s.ttl_s
    if max_age is not None:
        ttl = min(max_age, s.max_ttl_s)
    wanted = headers.get(TTL_HEADER) if headers else None
    if wanted is not None:
        ttl = min(_ttl(wanted), s.max_ttl_s)
    return ttl, max_age, no_cache


def _max_age(control: str) -> float | None:
    """The seconds of a Cache-Control max-age directive (lower case), or None; a malformed one is
    ignored, as HTTP caches do."""
    at = control.find("max-age=")
    if at < 0:
        return None
    digits = control[at + 8 :].split(",", 1)[0].strip().strip('"')
    return float(digits) if digits.isdigit() else None


def _ttl(value: str) -> float:
    try:
        ttl = float(value)
    except ValueError:
        ttl = -1.0
    if not ttl >= 0:  # also NaN
        raise InvalidRequest(
            f"{TTL_HEADER} must be a number of seconds (0 or more), not {value[:40]!r}", param=TTL_HEADER
        )
    return ttl
