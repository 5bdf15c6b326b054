"""Tool-call ids that carry provider state through an OpenAI client's history.

Gemini attaches a `thoughtSignature` to the functionCall parts of a thinking model and wants it
back on the next request (Gemini 3 refuses the call without it). OpenAI clients keep nothing but
the tool call id, so the signature rides in the id: `call_<hex>__ts__<signature>`, the signature
written in URL-safe base64 so the id stays within [A-Za-z0-9_-]. The prefix never contains the
marker, so splitting on its first occurrence is exact.
"""

from __future__ import annotations

import base64
import binascii
import re

from .chat import new_id

MARKER = "__ts__"
_ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")  # tool_use.id pattern, Anthropic Messages API reference
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def new_call_id(signature: str | None = None) -> str:
    base = new_id("call_")
    return base + MARKER + _to_urlsafe(signature) if signature else base


def split(call_id: str) -> tuple[str, str | None]:
    """(the id without any signature, the signature in standard base64 or None)."""
    base, marker, encoded = call_id.partition(MARKER)
    if not marker or not encoded:
        return call_id, None
    try:
        padded = encoded + "=" * (-len(encoded) % 4)
        signature = base64.b64encode(base64.urlsafe_b64decode(padded)).decode()
    except (binascii.Error, ValueError):
        return call_id, None
    return base, signature


def anthropic_id(call_id: str) -> str:
    """The id to use in tool_use / tool_result blocks: signature stripped, other characters made
    safe. Deterministic, so a call and its result still match."""
    base, _ = split(call_id)
    if _ANTHROPIC_ID.match(base):
        return base
    return _UNSAFE.sub("_", base) or "call_"


def _to_urlsafe(signature: str) -> str:
    try:
        raw = base64.b64decode(signature + "=" * (-len(signature) % 4), validate=True)
    except (binascii.Error, ValueError):
        raw = signature.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
