"""Embedding models on the pricing pages: OpenAI's embeddings table (one price per model) and
Gemini's embedding section (an input price only) become entries of mode "embedding", and the merge
prices the registry's embedding models from them without taking the missing output price for a
price of zero.

The saved excerpts of both pages (tests/fixtures/pricing/) stop before their embeddings part, so the
markup here is written by hand in the shape of the saved excerpts: a Markdown table under an
"Embeddings" heading, and a devsite section (h2, model id in <code>, a Standard table with a paid
column) with an "Input price" row alone."""

from __future__ import annotations

from llmproxy.registry.merge import MergePolicy, merge
from llmproxy_scrapers import gemini, openai

from tests.registry.test_merge import NOW, models, seed

OPENAI_PAGE = """Prices per 1M tokens.
### Standard
| Model | Input | Cached input | Output |
| --- | --- | --- | --- |
| gpt-5-mini | $0.25 | $0.025 | $2.00 |
## Embeddings
Build advanced search, clustering, topic modeling, and classification functionality with our embeddings offering.
| Model | Cost | Batch cost |
| --- | --- | --- |
| text-embedding-3-small | $0.02 | $0.01 |
| text-embedding-3-large | $0.26 | $0.13 |
| text-embedding-ada-002 | $0.10 | - |
"""

GEMINI_SECTION = (
    '<h2 id="gemini-embedding">Gemini Embedding</h2><p><em><code>gemini-embedding-001</code></em></p>'
    "<h3>Standard</h3><table><thead><tr><th></th><th>Free Tier</th>"
    "<th>Paid Tier, per 1M tokens in USD</th></tr></thead><tbody>"
    "<tr><td>Input price</td><td>Free of charge</td><td>$0.15</td></tr></tbody></table>"
)


def test_openais_embeddings_table_gives_one_input_price_per_model() -> None:
    entries = {e.model: e for e in openai.parse(OPENAI_PAGE)}
    small = entries["text-embedding-3-small"]
    assert (small.mode, small.input_per_mtok, small.output_per_mtok, small.batch_input_per_mtok) == (
        "embedding",
        0.02,
        0.0,
        0.01,
    )
    assert entries["text-embedding-ada-002"].batch_input_per_mtok is None
    assert entries["gpt-5-mini"].mode == "chat"


def test_geminis_embedding_section_has_an_input_price_only() -> None:
    (entry,) = gemini.parse("<html><body>" + GEMINI_SECTION + "</body></html>")
    assert (entry.model, entry.mode, entry.input_per_mtok, entry.output_per_mtok) == (
        "gemini-embedding-001",
        "embedding",
        0.15,
        0.0,
    )


def test_the_merge_prices_known_embedding_models_and_adds_new_ones_as_embedding_models() -> None:
    page = [e for e in openai.parse(OPENAI_PAGE) if e.mode == "embedding"]
    result = merge(seed(), {"openai": page}, {}, MergePolicy(max_model_loss=1.0, max_price_factor=4.0), now=NOW)
    assert result.outcomes["openai"].status == "ok", result.outcomes["openai"].problems
    large = models(result)["text-embedding-3-large"]
    assert (large["input_per_mtok"], large["output_per_mtok"], large["mode"]) == (0.26, 0.0, "embedding")
    new = merge(
        seed(),
        {"gemini": gemini.parse(GEMINI_SECTION.replace("gemini-embedding-001", "gemini-embedding-9"))},
        {},
        MergePolicy(max_model_loss=1.0),
        now=NOW,
    )
    added = models(new)["gemini-embedding-9"]
    assert (added["mode"], added["input_per_mtok"], added["output_per_mtok"]) == ("embedding", 0.15, 0.0)
