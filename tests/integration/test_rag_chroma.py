"""The vector-index conformance suite against a real Chroma server (``chroma run``),
and the RAG engine keeping a collection's vectors there.

The server comes from ``.venv-chroma`` (``make chroma`` creates it; ``make
test`` does so first), so the main package never depends on ``chromadb``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gatehouse.rag import CollectionSpec, DocumentIn, RagEngine
from gatehouse.rag.chroma import ChromaVectorIndex
from gatehouse.rag.vector_backends import ChromaBackend

from ..services import start_chroma
from ..unit.rag_fakes import bow_vector
from ..unit.vector_index_conformance import DIMENSIONS, VectorIndexConformance


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    chroma = start_chroma(tmp_path_factory.mktemp("chroma"))
    yield chroma.url
    chroma.stop()


class TestChroma(VectorIndexConformance):
    @pytest.fixture
    def index(self, chroma_url: str) -> Iterator[ChromaVectorIndex]:
        backend = ChromaVectorIndex(chroma_url, f"t-{uuid.uuid4().hex[:12]}", DIMENSIONS)
        yield backend
        backend.drop()
        backend.close()


def test_a_reopened_index_knows_its_rows(chroma_url: str) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    first = ChromaVectorIndex(chroma_url, name, 8)
    first.add([1, 2], np.eye(8, dtype=np.float32)[:2])
    again = ChromaVectorIndex(chroma_url, name, 8)
    assert len(again) == 2
    assert again.search(np.eye(8, dtype=np.float32)[1], 1)[0][0] == 2
    first.drop()


class _BagOfWords:
    """Embeds in process, so the engine needs no gateway."""

    async def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        return np.vstack([bow_vector(text) for text in texts]).astype(np.float32)


async def test_the_engine_keeps_vectors_in_chroma_and_drops_them_with_the_collection(
    chroma_url: str, tmp_path: Path
) -> None:
    engine = RagEngine(
        tmp_path / "rag", None, embedder=_BagOfWords(), vector_backend=ChromaBackend(chroma_url)
    )
    engine.create_collection(CollectionSpec(name="pets", embedding_model="test/bow"))
    await engine.add_documents(
        "pets",
        [
            DocumentIn(id="cats", text="Cats purr when they are content."),
            DocumentIn(id="dogs", text="Dogs bark at the postman."),
        ],
    )
    hits = await engine.search("pets", "why do cats purr", top_k=1, mode="dense")
    assert hits[0].document_id == "cats"
    assert _chroma_has(chroma_url, "gatehouse-pets")
    engine.delete_collection("pets")
    assert not _chroma_has(chroma_url, "gatehouse-pets")


def _chroma_has(url: str, name: str) -> bool:
    base = f"{url}/api/v2/tenants/default_tenant/databases/default_database/collections"
    return httpx.get(f"{base}/{name}").status_code == 200
