"""OpenAI messages -> Gemini `systemInstruction` and user/model `contents`."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import InvalidRequest
from . import chat
from .images import image_part, parse_data_url
from .toolids import split

# Gemini 3 refuses a replayed functionCall without its thoughtSignature; for calls whose signature
# was lost (history written by another provider or client) Google documents this sentinel value
# (ai.google.dev/gemini-api/docs/thought-signatures).
SKIP_SIGNATURE = "skip_thought_signature_validator"
_PLACEHOLDER = "(continued)"
# input_audio formats -> media types (Gemini audio understanding docs list wav, mp3, aiff, aac, ogg, flac)
_AUDIO = {
    "wav": "audio/wav",
    "mp3": "audio/mp3",
    "aiff": "audio/aiff",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
}

Part = dict[str, Any]


def convert_messages(
    messages: list[Any], *, needs_signatures: bool
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(systemInstruction or None, contents). Consecutive turns of one role are merged, so parallel
    function responses share one user turn as Gemini expects."""
    system: list[Part] = []
    contents: list[dict[str, Any]] = []
    names = chat.tool_call_names([m for m in messages if isinstance(m, dict)])
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = msg.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            text = chat.text_of(msg.get("content"), param=f"{where}.content")
            if text.strip():
                system.append({"text": text})
        elif role == "user":
            chat.push_turn(contents, "user", "parts", _user_parts(msg.get("content"), where))
        elif role == "assistant":
            chat.push_turn(contents, "model", "parts", _model_parts(msg, where, needs_signatures))
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in names:
                raise InvalidRequest(
                    f"{where}.tool_call_id must match a tool call of an earlier assistant message",
                    param=f"{where}.tool_call_id",
                )
            chat.push_turn(
                contents,
                "user",
                "parts",
                [{"functionResponse": {"name": names[call_id], "response": _response(msg.get("content"), where)}}],
            )
        elif role == "function":
            raise InvalidRequest(
                f"{where}: the legacy 'function' role is not supported; use tool messages", param=f"{where}.role"
            )
        else:
            raise InvalidRequest(
                f"{where}.role {role!r} is not one of system, developer, user, assistant, tool", param=f"{where}.role"
            )
    if not contents:
        raise InvalidRequest("messages must hold at least one user message with content", param="messages")
    if contents[0]["role"] != "user":
        contents.insert(0, {"role": "user", "parts": [{"text": _PLACEHOLDER}]})
    return ({"parts": system} if system else None), contents


def _user_parts(content: Any, where: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts", param=f"{where}.content")
    parts: list[Part] = []
    for j, part in enumerate(content):
        param = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                parts.append({"text": str(part["text"])})
        elif kind == "image_url":
            parts.append(image_part_of(part, param))
        elif kind == "input_audio":
            audio = part.get("input_audio") if isinstance(part.get("input_audio"), dict) else {}
            fmt = audio.get("format")
            if fmt not in _AUDIO or not isinstance(audio.get("data"), str):
                raise InvalidRequest(
                    f"{param}.input_audio needs base64 data and a format among {', '.join(_AUDIO)}",
                    param=f"{param}.input_audio",
                )
            parts.append({"inlineData": {"mimeType": _AUDIO[fmt], "data": audio["data"]}})
        elif kind == "file":
            spec = part.get("file") if isinstance(part.get("file"), dict) else {}
            data = spec.get("file_data")
            if not isinstance(data, str) or not data.startswith("data:"):
                raise InvalidRequest(
                    f"{param}: only inline files (file.file_data as a data: URL) are supported", param=f"{param}.file"
                )
            media_type, b64 = parse_data_url(data, param=f"{param}.file.file_data")
            parts.append({"inlineData": {"mimeType": media_type, "data": b64}})
        else:
            raise InvalidRequest(f"{param}: content part type {kind!r} is not supported by Gemini models", param=param)
    return parts


def image_part_of(part: dict[str, Any], param: str) -> Part:
    image = image_part(part, param=param)
    if image.url is not None:
        # fileData wants a mimeType; an extension-less URL is most often a JPEG
        return {"fileData": {"mimeType": image.media_type or "image/jpeg", "fileUri": image.url}}
    return {"inlineData": {"mimeType": image.media_type, "data": image.data}}


def _model_parts(msg: dict[str, Any], where: str, needs_signatures: bool) -> list[Part]:
    parts: list[Part] = []
    content = msg.get("content")
    if isinstance(content, list):
        content = chat.text_of(content, param=f"{where}.content")
    if content is not None and not isinstance(content, str):
        raise InvalidRequest(f"{where}.content must be a string or a list of text parts", param=f"{where}.content")
    if content:
        parts.append({"text": content})
    first_call = True
    for k, call in enumerate(msg.get("tool_calls") or ()):
        param = f"{where}.tool_calls[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(call.get("id"), str) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(f"{param} must have an id and a function name", param=param)
        args = chat.tool_arguments(fn.get("arguments"), f"{param}.function.arguments")
        part: Part = {"functionCall": {"name": fn["name"], "args": args}}
        _, signature = split(call["id"])
        if signature:
            part["thoughtSignature"] = signature
        elif needs_signatures and first_call:
            # Of parallel calls only the first carries a signature; it is the one Gemini 3 checks.
            part["thoughtSignature"] = SKIP_SIGNATURE
        first_call = False
        parts.append(part)
    return parts


def _response(content: Any, where: str) -> dict[str, Any]:
    """functionResponse.response is a JSON object (a protobuf Struct): a tool result that is one is
    passed as is, anything else is wrapped as {"result": ...}."""
    text = chat.text_of(content, param=f"{where}.content")
    try:
        value = orjson.loads(text) if text[:1] in ("{", "[") else None
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    return {"result": value if value is not None else text}
