"""OpenAI messages -> Anthropic `system` blocks and alternating user/assistant turns."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from . import chat
from .images import image_part, parse_data_url
from .toolids import anthropic_id

JSON_TOOL = "llmproxy_json_response"  # the forced tool behind response_format on models without structured outputs
# Base64 image media types Anthropic takes (Base64ImageSourceParam in the anthropic SDK).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_PLACEHOLDER = "(continued)"  # opens a conversation that starts with the assistant: Anthropic wants a user turn first

Block = dict[str, Any]


def convert_messages(messages: list[Any]) -> tuple[list[Block], list[dict[str, Any]]]:
    """(system text blocks, turns). System and developer messages may come anywhere and several
    times; consecutive turns of one role are merged, tool results first in their user turn."""
    system: list[Block] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = msg.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            text = chat.text_of(msg.get("content"), param=f"{where}.content")
            if text.strip():
                system.append({"type": "text", "text": text})
        elif role == "user":
            chat.push_turn(turns, "user", "content", _user_blocks(msg.get("content"), where))
        elif role == "assistant":
            chat.push_turn(turns, "assistant", "content", _assistant_blocks(msg, where))
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"{where}.tool_call_id is required", param=f"{where}.tool_call_id")
            chat.push_turn(turns, "user", "content", [_tool_result(call_id, msg.get("content"), where)])
        elif role == "function":
            raise InvalidRequest(
                f"{where}: the legacy 'function' role is not supported; use tool messages", param=f"{where}.role"
            )
        else:
            raise InvalidRequest(
                f"{where}.role {role!r} is not one of system, developer, user, assistant, tool", param=f"{where}.role"
            )
    if not turns:
        raise InvalidRequest("messages must hold at least one user message with content", param="messages")
    if turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": _PLACEHOLDER}]})
    last = turns[-1]
    if last["role"] == "assistant":
        # A final assistant turn is a prefill; the API refuses one that ends in whitespace.
        content = last["content"]
        if content and content[-1].get("type") == "text":
            content[-1]["text"] = content[-1]["text"].rstrip()
            if not content[-1]["text"]:
                content.pop()
        if not content:
            turns.pop()
    for turn in turns:
        if turn["role"] == "user":
            # tool_result blocks must open the user turn that answers a tool_use turn
            turn["content"].sort(key=lambda b: b.get("type") != "tool_result")
    return system, turns


def _user_blocks(content: Any, where: str) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts", param=f"{where}.content")
    blocks: list[Block] = []
    for j, part in enumerate(content):
        param = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(image_block(part, param))
        elif kind == "file":
            blocks.append(_document_block(part, param))
        else:
            raise InvalidRequest(
                f"{param}: content part type {kind!r} is not supported by Anthropic models", param=param
            )
    return blocks


def image_block(part: dict[str, Any], param: str) -> Block:
    image = image_part(part, param=param)
    if image.url is not None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    if image.media_type not in IMAGE_TYPES:
        raise InvalidRequest(
            f"{param}: Anthropic takes JPEG, PNG, GIF or WebP images, not {image.media_type}",
            param=f"{param}.image_url.url",
        )
    return {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}}


def _document_block(part: dict[str, Any], param: str) -> Block:
    file = part.get("file")
    spec: dict[str, Any] = file if isinstance(file, dict) else {}
    data = spec.get("file_data")
    if not isinstance(data, str):
        raise InvalidRequest(
            f"{param}: only inline files (file.file_data) are supported by Anthropic models", param=f"{param}.file"
        )
    if not data.startswith("data:"):
        data = "data:application/pdf;base64," + data
    media_type, b64 = parse_data_url(data, param=f"{param}.file.file_data")
    if media_type != "application/pdf":
        raise InvalidRequest(f"{param}: Anthropic takes PDF documents, not {media_type}", param=f"{param}.file")
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": b64}}


def _assistant_blocks(msg: dict[str, Any], where: str) -> list[Block]:
    blocks: list[Block] = []
    # Thinking blocks handed back by a client that kept them (we return them as `thinking_blocks`)
    # must precede the text and tool calls, unmodified.
    for block in msg.get("thinking_blocks") or ():
        if isinstance(block, dict) and block.get("type") == "thinking" and block.get("signature"):
            blocks.append(
                {"type": "thinking", "thinking": str(block.get("thinking", "")), "signature": str(block["signature"])}
            )
        elif isinstance(block, dict) and block.get("type") == "redacted_thinking" and block.get("data"):
            blocks.append({"type": "redacted_thinking", "data": str(block["data"])})
    content = msg.get("content")
    if isinstance(content, list):
        content = chat.text_of(content, param=f"{where}.content")
    if content is not None and not isinstance(content, str):
        raise InvalidRequest(f"{where}.content must be a string or a list of text parts", param=f"{where}.content")
    if content and content.strip():
        blocks.append({"type": "text", "text": content})
    for k, call in enumerate(msg.get("tool_calls") or ()):
        param = f"{where}.tool_calls[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(call.get("id"), str) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(f"{param} must have an id and a function name", param=param)
        blocks.append(
            {
                "type": "tool_use",
                "id": anthropic_id(call["id"]),
                "name": fn["name"],
                "input": chat.tool_arguments(fn.get("arguments"), f"{param}.function.arguments"),
            }
        )
    return blocks


def _tool_result(call_id: str, content: Any, where: str) -> Block:
    block: Block = {"type": "tool_result", "tool_use_id": anthropic_id(call_id)}
    if isinstance(content, list):
        parts: list[Block] = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and part.get("text"):
                parts.append({"type": "text", "text": str(part["text"])})
            elif kind == "image_url":
                parts.append(image_block(part, f"{where}.content[{j}]"))
            elif kind != "text":
                raise InvalidRequest(
                    f"{where}.content[{j}]: tool results hold text or images", param=f"{where}.content[{j}]"
                )
        if parts:
            block["content"] = parts
    elif content:
        block["content"] = str(content)
    return block
