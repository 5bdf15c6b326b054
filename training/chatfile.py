"""Read hand-written request files (`*.chat`): plain text a person can write and review, turned into
OpenAI chat.completions request bodies with a label.

    ### support-003 simple            a record: id, label (simple | medium | complex), optional lang=xx
    @system                           a message; the lines after it (until the next @ line) are its content
    @user / @assistant / @developer
    @call get_order {"order_id": "A7"}        an assistant turn that calls a tool (arguments as JSON)
    @result {"status": "shipped"}             the tool's answer to the last call
    @tool get_order(order_id:string, full:boolean?) Look up an order   a function tool; `?` = optional
    @format json_object | json_schema {...}   response_format (a one-line JSON schema)
    @max_tokens 300
    @image https://...                       adds an image part to the last user message
    {{doc:refund-policy}}                     inside a message: the text of a `### doc:refund-policy` block

`### doc:NAME` blocks hold long pasted documents written once and quoted by several requests of the
same file (the way a RAG app sends the same knowledge-base page with different questions).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

LABELS = ("simple", "medium", "complex")
Row = dict[str, Any]
_DOC_REF = re.compile(r"\{\{doc:([\w.-]+)\}\}")
_ROLES = ("system", "developer", "user", "assistant")


def _tool(spec: str) -> dict[str, Any]:
    """`name(a:string, b:integer?) description` -> an OpenAI function tool with a JSON schema."""
    m = re.fullmatch(r"(\w+)\((.*?)\)\s*(.*)", spec.strip())
    if not m:
        raise ValueError(f"bad @tool line: {spec!r}")
    name, args, description = m.groups()
    props: dict[str, Any] = {}
    required: list[str] = []
    for arg in filter(None, (a.strip() for a in args.split(","))):
        arg_name, _, kind = arg.partition(":")
        optional = kind.endswith("?")
        kind = kind.rstrip("?") or "string"
        props[arg_name] = {"type": "array", "items": {"type": "string"}} if kind == "list" else {"type": kind}
        if not optional:
            required.append(arg_name)
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": props, "required": required},
        },
    }


def parse(text: str, source: str) -> list[Row]:
    """All labelled requests of one file; raises ValueError naming the line on a malformed record."""
    docs: dict[str, str] = {}
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("### "):
            blocks.append((line[4:].strip(), []))
        elif blocks:
            blocks[-1][1].append(line)
    for head, lines in blocks:
        if head.startswith("doc:"):
            docs[head[4:].strip()] = "\n".join(lines).strip("\n")
    rows = []
    for head, lines in blocks:
        if not head.startswith("doc:"):
            rows.append(_record(head, lines, docs, source))
    return rows


def _record(head: str, lines: list[str], docs: dict[str, str], source: str) -> Row:
    parts = head.split()
    if len(parts) < 2 or parts[1] not in LABELS:
        raise ValueError(f"{source}: record header needs 'id label': {head!r}")
    rid, label = parts[0], parts[1]
    lang = next((p[5:] for p in parts[2:] if p.startswith("lang=")), "en")
    body: dict[str, Any] = {"model": "auto", "messages": []}
    messages: list[dict[str, Any]] = body["messages"]
    current: list[str] | None = None
    calls = 0

    def close() -> None:
        nonlocal current
        if current is not None:
            text = "\n".join(current).strip("\n")
            messages[-1]["content"] = _DOC_REF.sub(lambda m: docs[m.group(1)], text)
            current = None

    for line in lines:
        if not line.startswith("@"):
            if current is not None:
                current.append(line)
            elif line.strip():
                raise ValueError(f"{source}/{rid}: text outside a message: {line!r}")
            continue
        close()
        word, _, rest = line[1:].partition(" ")
        if word in _ROLES:
            messages.append({"role": word, "content": ""})
            current = []
        elif word == "call":
            name, _, args = rest.partition(" ")
            calls += 1
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{rid}_{calls}",
                            "type": "function",
                            "function": {"name": name, "arguments": orjson.dumps(orjson.loads(args or "{}")).decode()},
                        }
                    ],
                }
            )
        elif word == "result":
            messages.append({"role": "tool", "tool_call_id": f"call_{rid}_{calls}", "content": rest.strip()})
        elif word == "tool":
            body.setdefault("tools", []).append(_tool(rest))
        elif word == "format":
            kind, _, schema = rest.partition(" ")
            body["response_format"] = (
                {"type": kind}
                if not schema
                else {"type": kind, "json_schema": {"name": "answer", "schema": orjson.loads(schema)}}
            )
        elif word == "max_tokens":
            body["max_tokens"] = int(rest)
        elif word == "image":
            last = messages[-1]
            text = last["content"] if isinstance(last["content"], str) else ""
            last["content"] = [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": rest.strip()}},
            ]
        else:
            raise ValueError(f"{source}/{rid}: unknown directive @{word}")
    close()
    if not messages or messages[-1]["role"] not in ("user", "tool"):
        raise ValueError(f"{source}/{rid}: a request must end with a user (or tool) message")
    return {"id": f"{source}/{rid}", "source": source, "label": label, "lang": lang, "request": body}


def read_dir(folder: Path) -> list[Row]:
    """Every record of every `*.chat` file in a folder; the source is the file's stem."""
    rows: list[Row] = []
    for path in sorted(folder.glob("*.chat")):
        rows.extend(parse(path.read_text(encoding="utf-8"), path.stem))
    ids = [r["id"] for r in rows]
    if len(ids) != len(set(ids)):
        raise ValueError(f"duplicate record ids in {folder.name}")
    return rows
