"""The shared translation pieces: Gemini schema cleaning, tool-call ids, image parts."""

from __future__ import annotations

import pytest

from llmproxy.errors import InvalidRequest
from llmproxy.providers.images import guess_media_type, image_part, parse_data_url
from llmproxy.providers.gemini_schema import gemini_schema
from llmproxy.providers.toolids import anthropic_id, new_call_id, split


def test_schema_refs_nullable_const_and_dropped_keywords() -> None:
    schema = {
        "$schema": "x",
        "type": "object",
        "additionalProperties": False,
        "strict": True,
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
        "properties": {
            "unit": {"$ref": "#/$defs/Unit"},
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "k": {"const": "fixed"},
            "tags": {"type": ["array", "null"], "items": {"type": "string"}},
            "email": {"type": "string", "format": "email"},
        },
        "required": ["unit", "ghost"],
    }
    out = gemini_schema(schema, param="p")
    assert out == {
        "type": "object",
        "required": ["unit"],
        "properties": {
            "unit": {"type": "string", "enum": ["c", "f"], "format": "enum"},
            "n": {"type": "integer", "nullable": True},
            "k": {"enum": ["fixed"], "type": "string", "format": "enum"},
            "tags": {"type": "array", "nullable": True, "items": {"type": "string"}},
            "email": {"type": "string"},
        },
    }


def test_schema_unresolvable_ref_is_a_400() -> None:
    with pytest.raises(InvalidRequest):
        gemini_schema({"$ref": "#/$defs/Nope"}, param="tools[0]")


def test_signature_round_trip_and_anthropic_safe_ids() -> None:
    sig = "CiQB0e2Kb7zUvQ2yV+pc1fP4h5q0aGVsbG8vc2lnbmF0dXJlPT0="
    call_id = new_call_id(sig)
    assert split(call_id)[1] == sig and "+" not in call_id and "/" not in call_id and "=" not in call_id
    assert anthropic_id(call_id) == split(call_id)[0]
    assert anthropic_id("call:weird id") == "call_weird_id"
    assert split("call_plain") == ("call_plain", None)


def test_data_url_media_type_is_checked_against_bytes() -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
    assert parse_data_url("data:image/jpeg;base64," + png, param="p") == ("image/png", png)
    with pytest.raises(InvalidRequest):
        parse_data_url("data:image/png,notbase64", param="p")
    assert guess_media_type("https://x.test/a/cat.JPG?size=2") == "image/jpeg"
    assert image_part({"image_url": {"url": "https://x.test/pic"}}, param="p").media_type is None
