"""Tables out of a page: Markdown pipe tables and HTML <table>s, as one plain shape.

Providers publish the same price table as Markdown (the .md twins of the docs pages) or as HTML.
Both are read here into `Table` (header texts, row texts, the headings above), so a provider
module maps columns by header text without caring which format the page came in.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

_HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCK_TAGS = frozenset({"p", "div", "li", "tr", "section", *_HEADING_TAGS})
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_SEPARATOR_CELL = re.compile(r"^:?-{1,}:?$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_MD_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_MAX_HEADER_ROWS = 3


@dataclass(frozen=True, slots=True)
class Table:
    """One table: header text per column (multi-row headers joined), data rows, and where it sits.

    `headings` is the heading path above the table, outermost first; `preamble` is the text
    between the previous table (or the page start) and this one, where pages state their unit.
    """

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    headings: tuple[str, ...] = ()
    preamble: str = ""


# ---------------------------------------------------------------- Markdown


def markdown_tables(text: str) -> list[Table]:
    """Every pipe table in a Markdown document, with the headings it sits under."""
    tables: list[Table] = []
    headings: list[tuple[int, str]] = []
    preamble: list[str] = []
    lines = text.splitlines()
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith(("```", "~~~")):
            in_fence = not in_fence
        elif in_fence:
            pass
        elif heading := _MD_HEADING.match(line):
            level = len(heading.group(1))
            headings = [h for h in headings if h[0] < level] + [(level, markdown_cell(heading.group(2)))]
            preamble.append(heading.group(2))
        elif line.startswith("|") and i + 1 < len(lines) and _is_separator(lines[i + 1]):
            body: list[tuple[str, ...]] = []
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                body.append(_markdown_row(lines[j]))
                j += 1
            tables.append(Table(_markdown_row(line), tuple(body), tuple(h for _, h in headings), "\n".join(preamble)))
            preamble = []
            i = j
            continue
        elif line:
            preamble.append(line)
        i += 1
    return tables


def markdown_cell(text: str) -> str:
    """Plain text of a Markdown cell: links become their text, <br> a line break, other tags go."""
    text = _MD_LINK.sub(r"\1", text)
    text = re.sub(r"<sup>.*?</sup>|\[\^[^\]]*\]", "", text, flags=re.IGNORECASE)
    text = _MD_BREAK.sub("\n", text)
    text = _MD_TAG.sub("", text)
    text = text.replace("\\|", "|").replace("**", "").replace("__", "").replace("`", "")
    return html.unescape(text).strip()


def _is_separator(line: str) -> bool:
    cells = _split_row(line)
    return bool(cells) and all(_MD_SEPARATOR_CELL.match(cell.replace(" ", "")) for cell in cells)


def _split_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [cell.strip() for cell in _CELL_SPLIT.split(line)]


def _markdown_row(line: str) -> tuple[str, ...]:
    return tuple(markdown_cell(cell) for cell in _split_row(line))


# ---------------------------------------------------------------- HTML


def html_tables(page: str) -> list[Table]:
    """Every <table> of an HTML page, with the headings before it and tier hints of its wrappers."""
    tree = LexborHTMLParser(page)
    tables: list[Table] = []
    headings: list[tuple[int, str]] = []
    for node in tree.css(", ".join((*_HEADING_TAGS, "table"))):
        if node.tag == "table":
            path = [h for _, h in headings]
            if tier := wrapper_tier(node):
                path.append(tier)
            tables.append(html_table(node, tuple(path)))
        else:
            level = int(node.tag[1])
            headings = [h for h in headings if h[0] < level] + [(level, node_text(node))]
    return tables


def html_table(node: LexborNode, headings: tuple[str, ...] = ()) -> Table:
    """One <table> as a grid: colspans and rowspans expanded, header rows merged into one label per column.

    Header rows are the <thead>/all-<th> rows, plus a following label row that names the "Model"
    column (pages that put the real labels in a <td> row under group labels). A table marked up
    without any <th> takes its leading label rows (no amounts) as headers.
    """
    grid, marked = _grid(node)
    width = max((len(row) for row in grid), default=0)
    grid = [row + [""] * (width - len(row)) for row in grid]
    count = 0
    while count < min(len(grid), _MAX_HEADER_ROWS) and marked[count]:
        count += 1
    if count:
        while (
            count < min(len(grid), _MAX_HEADER_ROWS)
            and _is_label_row(grid[count])
            and any(cell.lower() == "model" for cell in grid[count])
        ):
            count += 1
    else:
        while count < min(len(grid) - 1, _MAX_HEADER_ROWS) and _is_label_row(grid[count]):
            count += 1
    header_rows = grid[:count]
    headers = tuple(" ".join(_unique(row[c] for row in header_rows if row[c])) for c in range(width))
    return Table(headers, tuple(tuple(row) for row in grid[count:]), headings, "\n".join(headings))


def node_text(node: LexborNode) -> str:
    """Visible text of a node: <br> and block ends become line breaks, <sup> footnote marks are dropped."""
    parts: list[str] = []
    _collect_text(node, parts)
    lines = (" ".join(line.split()) for line in "".join(parts).splitlines())
    return "\n".join(line for line in lines if line)


def wrapper_tier(node: LexborNode) -> str | None:
    """The pricing tier an ancestor declares, e.g. an Astro island with props {"tier": [0, "batch"]}."""
    parent = node.parent
    while parent is not None:
        props = (parent.attributes or {}).get("props") if parent.tag else None
        if props:
            try:
                tier = json.loads(props).get("tier")
            except (ValueError, AttributeError):
                tier = None
            # Astro serialises each prop as [type, value]; type 0 is a plain value.
            if isinstance(tier, list) and len(tier) == 2:
                tier = tier[1]
            if isinstance(tier, str):
                return f"{tier} tier"
        parent = parent.parent
    return None


def _collect_text(node: LexborNode, parts: list[str]) -> None:
    for child in node.iter(include_text=True):
        tag = child.tag
        if tag == "-text":
            parts.append(child.text_content or "")
        elif tag == "br":
            parts.append("\n")
        elif tag in ("sup", "script", "style", "template"):
            continue
        else:
            _collect_text(child, parts)
            if tag in _BLOCK_TAGS:
                parts.append("\n")


def _grid(table: LexborNode) -> tuple[list[list[str]], list[bool]]:
    """Rows of cell texts, and whether each row is marked up as a header (<thead> or all <th>).

    A cell spanning columns or rows is repeated in each slot it covers.
    """
    grid: list[list[str]] = []
    marked: list[bool] = []
    pending: dict[int, tuple[int, str]] = {}  # column -> (rows still covered, text) from rowspans
    for tr in table.css("tr"):
        if _owning_table(tr) != table:
            continue  # a row of a nested table
        row: list[str] = []
        cells = [c for c in tr.iter() if c.tag in ("td", "th")]
        col = 0
        for cell in cells:
            while col in pending:
                col = _take_pending(pending, col, row)
            text = node_text(cell)
            attrs = cell.attributes or {}
            colspan = _span(attrs.get("colspan"))
            rowspan = _span(attrs.get("rowspan") or attrs.get("rowSpan"))
            for _ in range(colspan):
                row.append(text)
                if rowspan > 1:
                    pending[col] = (rowspan - 1, text)
                col += 1
        while col in pending:
            col = _take_pending(pending, col, row)
        grid.append(row)
        in_head = tr.parent is not None and tr.parent.tag == "thead"
        marked.append(bool(cells) and (in_head or all(c.tag == "th" for c in cells)))
    return _spread_groups(grid), marked


def _take_pending(pending: dict[int, tuple[int, str]], col: int, row: list[str]) -> int:
    left, text = pending.pop(col)
    row.append(text)
    if left > 1:
        pending[col] = (left - 1, text)
    return col + 1


def _spread_groups(grid: list[list[str]]) -> list[list[str]]:
    """Widen a short group-label row written without colspan ("", "Short context", "Long context").

    When such a row has k cells above a table w wide and the w-1 value columns split evenly into
    k-1 groups, each label is repeated over its group, as a colspan would have done.
    """
    width = max((len(row) for row in grid), default=0)
    out: list[list[str]] = []
    for index, row in enumerate(grid):
        k = len(row)
        is_group_row = index < _MAX_HEADER_ROWS and 2 <= k < width and (width - 1) % (k - 1) == 0 and _is_label_row(row)
        if is_group_row:
            size = (width - 1) // (k - 1)
            row = [row[0]] + [label for label in row[1:] for _ in range(size)]
        out.append(row)
    return out


def _is_label_row(row: list[str]) -> bool:
    """A row of labels rather than values: no dollar amount, no bare number."""
    return not any("$" in cell or re.fullmatch(r"[\d.,]+", cell) for cell in row)


def _unique(texts: Iterable[str]) -> list[str]:
    """Texts in order without repeats: a rowspan header cell must not read "Model Model"."""
    return list(dict.fromkeys(texts))


def _owning_table(node: LexborNode) -> LexborNode | None:
    parent = node.parent
    while parent is not None and parent.tag != "table":
        parent = parent.parent
    return parent


def _span(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 50))
    except ValueError:
        return 1
