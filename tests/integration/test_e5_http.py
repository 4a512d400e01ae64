"""local/e5-small served over HTTP and used by a RAG collection: Arabic finds Arabic."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server

C = "/v1/rag/collections"
CONFIG = """
local:
  chat: {enabled: false}
  e5: {threads: 1}
models:
  - name: local/e5-small
    mode: embedding
    deployments:
      - provider: local
        model: local/e5-small
"""
# Written for this test: one short passage each on four unrelated subjects, two in Arabic.
DOCUMENTS = [
    ("rabat", "الرباط هي عاصمة المملكة المغربية، وتقع على ساحل المحيط الأطلسي."),
    ("dates", "تزرع أشجار النخيل في الواحات، ويجمع التمر في أواخر الصيف."),
    ("violin", "The violin has four strings tuned in perfect fifths."),
    ("tides", "Tides rise and fall twice a day because of the moon's pull."),
]


@pytest.fixture(scope="module")
def e5_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("e5")
    config = root / "gatehouse.yaml"
    config.write_text(CONFIG)
    running = start_server(root / "data", config=config)
    yield running
    stop_server(running)


def test_embeddings_over_the_openai_sdk(e5_server: RunningServer) -> None:
    response = e5_server.openai().embeddings.create(
        model="local/e5-small", input=["query: capital of Morocco", "passage: Rabat"]
    )
    assert [len(item.embedding) for item in response.data] == [384, 384]
    assert response.usage.prompt_tokens > 0


def test_a_collection_on_e5_retrieves_arabic_by_meaning(e5_server: RunningServer) -> None:
    base = e5_server.base_url
    created = httpx.post(
        f"{base}{C}", json={"name": "multi", "embedding_model": "local/e5-small"}, timeout=30
    )
    assert created.status_code in (200, 201), created.text
    assert created.json()["query_prefix"] is None  # the model's own prefixes apply
    added = httpx.post(
        f"{base}{C}/multi/documents",
        json={"documents": [{"id": i, "text": t} for i, t in DOCUMENTS]},
        timeout=120,
    )
    assert added.status_code == 200, added.text
    for query, expected in (
        ("ما هي عاصمة المغرب؟", "rabat"),  # "what is the capital of Morocco?"
        ("متى يحصد التمر", "dates"),  # "when are dates harvested"
        ("why does the sea level change every day", "tides"),
    ):
        found = httpx.post(
            f"{base}{C}/multi/search",
            json={"query": query, "top_k": 1, "mode": "dense"},
            timeout=60,
        )
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["document_id"] == expected, query
