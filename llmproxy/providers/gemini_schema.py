"""JSON Schema -> the OpenAPI-3.0 subset Gemini takes in functionDeclarations.parameters and
generationConfig.responseSchema.

Gemini's Schema object (REST reference, v1beta `Schema`) knows: type, format, title, description,
nullable, enum, maxItems, minItems, properties, required, minProperties, maxProperties, minLength,
maxLength, pattern, example, anyOf, propertyOrdering, default, items, minimum, maximum. Anything
else is an unknown field and the whole request is refused with 400 INVALID_ARGUMENT. So: $ref is
inlined from $defs/definitions, `anyOf [X, {type: null}]` and `type: [X, "null"]` become
`nullable: true`, `const` becomes a one-value enum, and unknown keywords (additionalProperties,
strict, $schema, oneOf/allOf...) are dropped.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest

_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_MAX_DEPTH = 64  # a recursive $ref is cut here rather than expanded forever


def gemini_schema(schema: dict[str, Any], *, param: str) -> dict[str, Any]:
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _convert(schema, defs, param, 0)


def _convert(node: Any, defs: dict[str, Any], param: str, depth: int) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise InvalidRequest(f"{param}: every schema must be an object", param=param)
    if depth > _MAX_DEPTH:
        return {"type": "object"}
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/") or name not in defs:
            raise InvalidRequest(f"{param}: cannot resolve $ref {ref!r}", param=param)
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, defs, param, depth + 1)

    out: dict[str, Any] = {}
    nullable = bool(node.get("nullable"))
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        nullable = nullable or len(kinds) < len(kind)
        if len(kinds) == 1:
            kind = kinds[0]
        elif kinds:
            variants = [_convert({**_without(node, "type"), "type": k}, defs, param, depth + 1) for k in kinds]
            return {"anyOf": variants, **({"nullable": True} if nullable else {})}
        else:
            kind = "null"
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list) and options:
            rest = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            nullable = nullable or len(rest) < len(options)
            if len(rest) == 1:
                inner = _convert({**_without(node, key), **rest[0]}, defs, param, depth + 1)
                if nullable:
                    inner["nullable"] = True
                return inner
            out["anyOf"] = [_convert(o, defs, param, depth + 1) for o in rest]
            break
    all_of = node.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged = _without(node, "allOf")
        for part in all_of:
            part = (
                defs.get(part["$ref"].rsplit("/", 1)[-1], part) if isinstance(part, dict) and "$ref" in part else part
            )
            if isinstance(part, dict):
                merged = {
                    **part,
                    **merged,
                    "properties": {**(part.get("properties") or {}), **(merged.get("properties") or {})},
                    "required": [*(part.get("required") or []), *(merged.get("required") or [])],
                }
        return _convert({k: v for k, v in merged.items() if v != [] and v != {}}, defs, param, depth + 1)

    if isinstance(kind, str):
        if kind not in _TYPES:
            raise InvalidRequest(f"{param}: unknown schema type {kind!r}", param=param)
        out["type"] = kind
    if "const" in node:
        out["enum"] = [node["const"]]
    if isinstance(node.get("enum"), list):
        out["enum"] = list(node["enum"])
    if "enum" in out:
        # Gemini enums are string enums (Schema.enum is string[]), the type going with them STRING.
        out["enum"] = [str(v) for v in out["enum"] if v is not None]
        out["type"] = "string"
        out.setdefault("format", "enum")
    if nullable:
        out["nullable"] = True

    props = node.get("properties")
    if isinstance(props, dict):
        out["properties"] = {
            name: _convert(sub, defs, f"{param}.properties.{name}", depth + 1) for name, sub in props.items()
        }
        out.setdefault("type", "object")
        required = [r for r in node.get("required") or () if r in props]
        if required:
            out["required"] = required
    if "items" in node:
        items = node["items"]
        out["items"] = (
            _convert(items if isinstance(items, dict) else {}, defs, f"{param}.items", depth + 1)
            if items not in (True, {})
            else {"type": "string"}
        )
        out.setdefault("type", "array")
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {"type": "string"}  # Gemini refuses an ARRAY without items

    for key in (
        "description",
        "title",
        "pattern",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "example",
        "default",
        "propertyOrdering",
    ):
        if key in node and node[key] is not None:
            out[key] = node[key]
    fmt = node.get("format")
    if (
        isinstance(fmt, str)
        and "format" not in out
        and fmt in ("date-time", "enum", "int32", "int64", "float", "double")
    ):
        out["format"] = fmt  # other formats (email, uri...) are refused by Gemini
    if out.get("type") == "null":
        out.pop("type")
        out["nullable"] = True
    return out


def _without(node: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != key}
