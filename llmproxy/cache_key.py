"""The response cache's key: a request's canonical form and its hash, so that field order, JSON
whitespace and what does not change the answer never split one answer into two entries."""

from __future__ import annotations

from hashlib import sha256

import orjson

from .context import ChatRequest

# Fields that do not change the answer: how it is delivered (stream, stream_options), who asks
# (user, safety_identifier) and bookkeeping the provider keeps (metadata, store, prompt_cache_key).
# Everything else, unknown fields included, is part of the key: a needless miss is cheap, a wrong
# hit is not.
IGNORED_FIELDS = frozenset(
    ("stream", "stream_options", "user", "metadata", "store", "prompt_cache_key", "safety_identifier")
)
_NUMBER_FIELDS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")


def request_key(tenant: str, body: ChatRequest) -> tuple[str, int]:
    """(hex key, 64-bit id) of a request: field order and JSON whitespace do not matter (the body is
    parsed, then serialised with sorted keys); 1 and 1.0 are the same temperature."""
    # Copy the body only when something in it must change (most requests: nothing).
    canonical = body if IGNORED_FIELDS.isdisjoint(body) else {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    for name in _NUMBER_FIELDS:
        value = canonical.get(name)
        if type(value) is int:
            if canonical is body:
                canonical = dict(body)
            canonical[name] = float(value)
    # sha256 over blake2b: hardware-accelerated here, a third faster on a 2 KB request.
    digest = sha256(tenant.encode() + b"\0" + orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).digest()[:16]
    return digest.hex(), int.from_bytes(digest[:8], "big", signed=True)
