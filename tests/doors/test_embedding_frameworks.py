"""The embedding classes RAG frameworks ship, pointed at the gateway instead of OpenAI: LangChain's
OpenAIEmbeddings (langchain-openai) and LlamaIndex's OpenAILikeEmbedding
(llama-index-embeddings-openai-like), on an OpenAI, a Gemini and an OpenAI-compatible model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from langchain_openai import OpenAIEmbeddings
from llama_index.embeddings.openai_like import OpenAILikeEmbedding

from tests.doors.test_embeddings import MASTER, close, start, unit  # noqa: F401 - the fixture, by name
from tests.fakes.openai_legacy import vector
from tests.integration._providers import fake_anthropic, fake_gemini, upstreams  # noqa: F401 - fixtures by name

MODELS = [("text-embedding-3-small", 1536), ("gemini-embedding-001", 3072), ("nomic-embed-text", 768)]


@pytest.mark.parametrize("model, size", MODELS)
def test_langchain_openai_embeddings(start: Callable[..., str], model: str, size: int) -> None:
    # check_embedding_ctx_length=False: LangChain would otherwise fetch tiktoken's vocabulary from
    # the internet to cut texts into token arrays (and only OpenAI takes those).
    embeddings = OpenAIEmbeddings(
        model=model,
        base_url=start() + "/v1",
        api_key=MASTER,
        check_embedding_ctx_length=False,
        chunk_size=3,
        max_retries=0,
    )
    texts = ["first document", "second document", "third document", "fourth document"]
    documents = embeddings.embed_documents(texts)  # chunk_size 3: two requests, joined by LangChain
    assert [close(d, vector(t, size)) for d, t in zip(documents, texts, strict=True)] == [True] * 4
    assert close(embeddings.embed_query("a question"), vector("a question", size))


def test_langchain_with_dimensions_on_gemini(start: Callable[..., str]) -> None:
    embeddings = OpenAIEmbeddings(
        model="gemini-embedding-001",
        base_url=start() + "/v1",
        api_key=MASTER,
        dimensions=256,
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    assert close(embeddings.embed_query("short"), unit(vector("short", 3072)[:256]))


@pytest.mark.parametrize("model, size", MODELS)
def test_llamaindex_openai_like_embedding(start: Callable[..., str], model: str, size: int) -> None:
    embedding = OpenAILikeEmbedding(
        model_name=model, api_base=start() + "/v1", api_key=MASTER, embed_batch_size=2, max_retries=0
    )
    texts = ["alpha", "beta", "gamma"]
    vectors = embedding.get_text_embedding_batch(texts)
    assert [close(v, vector(t, size)) for v, t in zip(vectors, texts, strict=True)] == [True] * 3
    assert close(embedding.get_query_embedding("delta"), vector("delta", size))
