"""llmproxy_scrapers.tables: Markdown and HTML tables read into one shape."""

from __future__ import annotations

from llmproxy_scrapers.tables import html_tables, markdown_tables


def test_markdown_tables_with_headings_links_breaks_and_escaped_pipes() -> None:
    text = """# Pricing
Prices per 1M tokens.
## Text
### Standard
| Model | Input |
|:---|---:|
| [gpt-x](https://example.com) **new** | $1<br/>$2 |
| a \\| b | `$3` |

```
| Model | Input |
| --- | --- |
| not-a-table | $9 |
```
"""
    (table,) = markdown_tables(text)
    assert table.headers == ("Model", "Input")
    assert table.rows == (("gpt-x new", "$1\n$2"), ("a | b", "$3"))
    assert table.headings == ("Pricing", "Text", "Standard")
    assert "Prices per 1M tokens." in table.preamble


def test_html_tables_expand_colspan_and_rowspan_into_headers() -> None:
    html = """<h2>Standard</h2><table>
<thead><tr><th rowspan="2">Model</th><th colspan="2">Short context</th><th colspan="2">Long context</th></tr>
<tr><th>Input</th><th>Output</th><th>Input</th><th>Output</th></tr></thead>
<tbody><tr><td>gpt-x<sup>1</sup></td><td>$1</td><td>$2</td><td>$3</td><td>$4</td></tr></tbody></table>"""
    (table,) = html_tables(html)
    assert table.headers == (
        "Model",
        "Short context Input",
        "Short context Output",
        "Long context Input",
        "Long context Output",
    )
    assert table.rows == (("gpt-x", "$1", "$2", "$3", "$4"),)
    assert table.headings == ("Standard",)


def test_html_table_without_th_takes_leading_label_rows_as_headers() -> None:
    (table,) = html_tables("<table><tr><td>Model</td><td>Price</td></tr><tr><td>m</td><td>$1<br>$2</td></tr></table>")
    assert table.headers == ("Model", "Price")
    assert table.rows == (("m", "$1\n$2"),)


def test_html_tier_from_astro_island_props() -> None:
    html = (
        '<astro-island props="{&quot;tier&quot;:[0,&quot;batch&quot;]}">'
        "<table><tr><th>Model</th></tr></table></astro-island>"
    )
    (table,) = html_tables(html)
    assert table.headings == ("batch tier",)
