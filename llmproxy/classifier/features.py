"""Featurize a chat request: what it asks for, how it is built, and (as one signal among others) its size.

Three kinds of features, shared unchanged by training and by the gateway:
- the ask: hashed word/char n-grams of the head and tail of the last user message, plus the words of
  its *instruction* (the short paragraph at either end of a pasted document) under their own prefix;
- cues: words grouped by what they ask for (prove/derive, design a system, analyse under constraints,
  expert domains, produce a deliverable, trivial operations, small talk, questions of fact) in several
  languages (the word lists are in cues.py), counted in the instruction window, and the ask's first
  words (its task verb);
- structure: tools, tool calls and results, response_format and schema size, images, turns, code
  fences, constraint lines, numbers, lengths (log-scaled and bucketed).
Cost is bounded whatever the prompt size: text features read about 1.5 kB of the ask; whole-text
signals use C-speed `len` / `str.count` only.
"""

from __future__ import annotations

import math
import re
import zlib
from itertools import pairwise
from dataclasses import dataclass
from typing import Any

from llmproxy.classifier.cues import CJK_CUES, CUE_OF, N_CUES

ChatRequest = dict[str, Any]
Features = dict[int, float]

DIM_BITS = 16
DIM = 1 << DIM_BITS
N_DENSE = 40  # indices [0, N_DENSE) are dense numeric features; hashed ones land above.

ASK_HEAD = 1000  # chars of the last user message tokenized from the start...
ASK_TAIL = 500  # ...and from the end (the ask is usually at one end of a pasted document)
CHAR_HEAD = 200  # char 4-grams only over the opening and closing of the ask
CHAR_TAIL = 120
SYSTEM_HEAD = 300
PREV_HEAD = 200
TOOLS_HEAD = 300
SCAN_HEAD = 8_000  # structural counts (code fences, lines, questions) over this much of a long ask...
SCAN_TAIL = 2_000  # ...plus its end; str.count over 100 kB costs ~30 us a call, over 10 kB ~3 us
PARA_SCAN = 4_000  # the first / last paragraph break is searched for this far from each end

_WORD = re.compile(r"\w+")
_NUMBERED = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?%?")
_MATH = re.compile(r"\\frac|\\sum|\\int|\\sqrt|\\le|\\ge|[∑∫√≤≥∀∃∈π]|\^\d|\$")
INSTRUCTION_MAX = 600  # an end paragraph this short, after or before a long paste, is read as the instruction


@dataclass(frozen=True, slots=True)
class RequestText:
    """The parts of a request the classifier reads."""

    ask: str  # last user message (text parts joined)
    system: str  # system + developer messages joined
    previous: str  # the user message before the ask, if any
    tools: str  # tool names and descriptions
    total_chars: int  # all message text
    n_messages: int
    n_user: int
    n_images: int
    n_tools: int
    response_format: str  # "", "text", "json_object", "json_schema"
    max_tokens: int  # 0 when absent
    n_tool_calls: int = 0  # assistant tool calls in the conversation
    after_ask: int = 0  # messages after the last user message (tool calls and results of this turn)
    schema_fields: int = 0  # properties in the requested JSON schema (nested, capped)


def _content_text(content: Any) -> tuple[str, int]:
    """Text of a message content (string or list of parts) and its image count."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts: list[str] = []
    images = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in ("image_url", "input_image", "image"):
            images += 1
    return "\n".join(texts), images


def _schema_fields(schema: Any, budget: int = 64) -> int:
    """Number of properties in a JSON schema, nested, counting at most `budget` of them."""
    if not isinstance(schema, dict) or budget <= 0:
        return 0
    count = 0
    props = schema.get("properties")
    if isinstance(props, dict):
        for value in props.values():
            count += 1 + _schema_fields(value, budget - count - 1)
            if count >= budget:
                return budget
    items = schema.get("items")
    if isinstance(items, dict):
        count += _schema_fields(items, budget - count)
    return min(count, budget)


def extract(request: ChatRequest) -> RequestText:
    """Pull the classifier's view out of an OpenAI chat.completions request dict."""
    messages = request.get("messages")
    if not isinstance(messages, list):
        messages = []
    system: list[str] = []
    users: list[str] = []
    last_text = ""
    total = images = calls = after = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        text, n_img = _content_text(message.get("content"))
        total += len(text)
        images += n_img
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text)
        elif role == "user":
            users.append(text)
            after = -1
        elif role == "assistant" and message.get("tool_calls"):
            calls += 1
        after += 1
        last_text = text
    tools = request.get("tools") or request.get("functions") or []
    if not isinstance(tools, list):
        tools = []
    tool_bits: list[str] = []
    for tool in tools[:16]:
        if isinstance(tool, dict):
            fn = tool.get("function", tool)
            if isinstance(fn, dict):
                tool_bits.append(f"{fn.get('name', '')} {str(fn.get('description', ''))[:120]}")
    fmt = request.get("response_format")
    fmt_type = str(fmt.get("type", "")) if isinstance(fmt, dict) else ""
    schema = fmt.get("json_schema") if isinstance(fmt, dict) else None
    if isinstance(schema, dict):
        schema = schema.get("schema", schema)
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens") or 0
    return RequestText(
        ask=users[-1] if users else last_text,
        system="\n".join(system),
        previous=users[-2] if len(users) > 1 else "",
        tools=" ".join(tool_bits)[:TOOLS_HEAD],
        total_chars=total,
        n_messages=len(messages),
        n_user=len(users),
        n_images=images,
        n_tools=len(tools),
        response_format=fmt_type,
        max_tokens=max_tokens if isinstance(max_tokens, int) else 0,
        n_tool_calls=calls,
        after_ask=max(after, 0) if users else 0,
        schema_fields=_schema_fields(schema),
    )


def _bucket(value: float) -> int:
    """Log2 bucket: 0, 1, 2-3, 4-7, ... -> 0, 1, 2, 3, ..."""
    return int(value).bit_length() if value > 0 else 0


def _head_tail(text: str, head: int, tail: int) -> str:
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[-tail:]


def _hash(token: str) -> int:
    return N_DENSE + zlib.crc32(token.encode("utf-8", "surrogatepass")) % (DIM - N_DENSE)


def instruction(ask: str) -> tuple[str, bool]:
    """(the instruction, whether a document surrounds it). A long ask whose first or last paragraph is
    short reads as "document + instruction"; otherwise the whole ask (its n-gram window) is the instruction."""
    n = len(ask)
    if n <= ASK_HEAD:
        return ask, False
    cut = ask.rfind("\n\n", max(0, n - INSTRUCTION_MAX - 2))
    if cut >= 0 and ask[cut:].strip():
        return ask[cut:].strip(), True
    cut = ask.find("\n\n", 0, INSTRUCTION_MAX + 2)
    if cut > 0 and ask[:cut].strip():
        return ask[:cut].strip(), True
    return _head_tail(ask, ASK_HEAD, ASK_TAIL), False


def _cues(text: str, words: list[str]) -> list[int]:
    counts = [0] * N_CUES
    get = CUE_OF.get
    for word in words:
        group = get(word)
        if group is not None:
            counts[group] += 1
    if not text.isascii():
        for term, group in CJK_CUES:
            if term in text:
                counts[group] += 1
    return counts


def _structure(rt: RequestText, instr: str, has_doc: bool, instr_words: list[str]) -> tuple[list[float], list[str]]:
    """Dense numeric features and bucketed structural tokens, all O(len) in C."""
    ask = rt.ask
    n = len(ask)
    scan = _head_tail(ask, SCAN_HEAD, SCAN_TAIL)
    fences = scan.count("```")
    lines = scan.count("\n")
    first_para = ask.find("\n\n", 0, PARA_SCAN)
    first_para = min(n, PARA_SCAN) if first_para < 0 else first_para
    last_para = ask.rfind("\n\n", max(0, n - PARA_SCAN))
    last_para = min(n, PARA_SCAN) if last_para < 0 else n - last_para
    window = _head_tail(ask, ASK_HEAD, ASK_TAIL)
    numbered = len(_NUMBERED.findall(window))
    math_marks = len(_MATH.findall(window))
    questions = scan.count("?") + scan.count("¿")
    numbers = len(_NUMBER.findall(window))
    sentences = window.count(". ") + window.count("? ") + window.count(".\n")
    cues = _cues(instr, instr_words)
    n_instr_words = len(instr_words)
    clauses = instr.count(",") + instr.count(";") + instr_words.count("and") + instr_words.count("then")
    dense = [
        1.0,  # bias
        math.log1p(n) / 10.0,
        math.log1p(rt.total_chars) / 10.0,
        math.log1p(len(rt.system)) / 10.0,
        math.log1p(rt.n_messages) / 3.0,
        math.log1p(rt.n_tools) / 3.0,
        math.log1p(rt.n_images) / 2.0,
        math.log1p(fences) / 3.0,
        math.log1p(numbered) / 3.0,
        math.log1p(math_marks) / 3.0,
        math.log1p(min(first_para, last_para)) / 10.0,
        math.log1p(questions) / 3.0,
        math.log1p(rt.max_tokens) / 10.0,
        math.log1p(lines) / 6.0,
        math.log1p(numbers) / 4.0,
        math.log1p(sentences) / 4.0,
        math.log1p(n_instr_words) / 5.0,
        math.log1p(clauses) / 3.0,
        float(has_doc),
        math.log1p(rt.n_tool_calls) / 2.0,
        math.log1p(rt.after_ask) / 2.0,
        math.log1p(rt.schema_fields) / 3.0,
        *[math.log1p(c) / 2.0 for c in cues],
    ]
    first = instr_words[:2]
    tokens = [
        f"#ask_len={_bucket(n)}",
        f"#total_len={_bucket(rt.total_chars)}",
        f"#sys_len={_bucket(len(rt.system))}",
        f"#msgs={min(rt.n_messages, 12)}",
        f"#users={min(rt.n_user, 8)}",
        f"#tools={min(rt.n_tools, 6)}",
        f"#images={min(rt.n_images, 4)}",
        f"#fences={min(fences, 8)}",
        f"#numbered={min(numbered, 12)}",
        f"#math={_bucket(math_marks)}",
        f"#first_para={_bucket(first_para)}",
        f"#last_para={_bucket(last_para)}",
        f"#questions={min(questions, 6)}",
        f"#numbers={_bucket(numbers)}",
        f"#sentences={_bucket(sentences)}",
        f"#rf={rt.response_format}",
        f"#max_tokens={_bucket(rt.max_tokens)}",
        f"#long_doc_short_ask={n > 1500 and min(first_para, last_para) < 200}",
        f"#instr_words={_bucket(n_instr_words)}",
        f"#clauses={_bucket(clauses)}",
        f"#doc={has_doc}",
        f"#tool_calls={min(rt.n_tool_calls, 4)}",
        f"#after_ask={min(rt.after_ask, 4)}",
        f"#schema={_bucket(rt.schema_fields)}",
        f"#first={first[0] if first else ''}",
        f"#first2={' '.join(first)}",
        f"#cue_mix={'.'.join(str(min(c, 2)) for c in cues[:6])}",
    ]
    tokens += [f"#cue{i}={min(c, 4)}" for i, c in enumerate(cues) if c]
    return dense, tokens


def _text_tokens(rt: RequestText, instr: str, has_doc: bool, instr_words: list[str]) -> list[str]:
    """Word uni/bigrams and char 4-grams from bounded slices of the request."""
    tokens: list[str] = []
    words = _WORD.findall(_head_tail(rt.ask, ASK_HEAD, ASK_TAIL).lower())
    tokens.extend(words)
    tokens.extend([f"{a} {b}" for a, b in pairwise(words)])
    chars = _head_tail(rt.ask, CHAR_HEAD, CHAR_TAIL).lower()
    chars = " ".join(chars.split())
    tokens.extend([f"~{chars[i : i + 4]}" for i in range(max(len(chars) - 3, 0))])
    if has_doc:  # the instruction's own words, apart from the document's
        tokens.extend([f"i:{w}" for w in instr_words])
        tokens.extend([f"i:{a} {b}" for a, b in pairwise(instr_words)])
    tokens.extend([f"s:{w}" for w in _WORD.findall(rt.system[:SYSTEM_HEAD].lower())])
    tokens.extend([f"p:{w}" for w in _WORD.findall(rt.previous[:PREV_HEAD].lower())])
    tokens.extend([f"t:{w}" for w in _WORD.findall(rt.tools.lower())])
    return tokens


def featurize(request: ChatRequest) -> Features:
    """Sparse feature vector {index: value} of a request; text block L2-normalised."""
    rt = extract(request)
    instr, has_doc = instruction(rt.ask)
    instr_words = _WORD.findall(instr.lower())
    dense, struct_tokens = _structure(rt, instr, has_doc, instr_words)
    feats: Features = {i: v for i, v in enumerate(dense) if v}
    for token in struct_tokens:
        feats[_hash(token)] = 1.0
    text_idx = set(map(_hash, set(_text_tokens(rt, instr, has_doc, instr_words))))
    if text_idx:
        weight = 1.0 / math.sqrt(len(text_idx))
        for i in text_idx:
            feats[i] = feats.get(i, 0.0) + weight
    return feats
