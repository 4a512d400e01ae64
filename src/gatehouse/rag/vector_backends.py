"""Where collections keep their vectors: the ``rag.vector_backend`` setting.

A :class:`VectorBackend` builds each collection's
:class:`~gatehouse.rag.index.VectorIndex` and forgets a deleted collection's
vectors. Backends, by setting name:

- ``embedded`` (the default): in process, exact search and an HNSW graph
  saved under the collection's folder (:mod:`gatehouse.rag.vector`);
- ``chroma``: a Chroma server at ``rag.chroma_url``, shared by replicas
  (:mod:`gatehouse.rag.chroma`).

Adding one: implement ``VectorIndex`` so that it passes the conformance
suite named in :mod:`gatehouse.rag.index`, write a ``VectorBackend`` here, and
name it in ``BACKENDS`` and in ``VectorBackendName`` in ``core/config.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gatehouse.core.config import RagConfig, VectorBackendName
from gatehouse.rag.index import VectorIndex

# Builds a collection's vector index for vectors of the given dimension.
IndexBuilder = Callable[[int], VectorIndex]


class VectorBackend(Protocol):
    """Where the vectors of every collection live."""

    @property
    def in_process(self) -> bool:
        """Whether vectors are indexed in this process (the HNSW graph is ours to
        build and save), rather than by a server."""

    def builder(self, collection: str) -> IndexBuilder | None:
        """What builds ``collection``'s vector index; ``None``: the embedded index,
        which :class:`~gatehouse.rag.collection.Collection` loads with its saved graph."""

    def drop(self, collection: str) -> None:
        """Forget ``collection``'s vectors: it is being deleted."""


@dataclass(frozen=True, slots=True)
class EmbeddedBackend:
    """Vectors in process; the collection's folder holds everything, graph included."""

    @property
    def in_process(self) -> bool:
        return True

    def builder(self, collection: str) -> IndexBuilder | None:
        return None

    def drop(self, collection: str) -> None:
        return None  # deleting the collection's folder deletes the graph


@dataclass(frozen=True, slots=True)
class ChromaBackend:
    """Vectors in the Chroma server at ``url``, one Chroma collection per collection."""

    url: str

    @property
    def in_process(self) -> bool:
        return False

    def builder(self, collection: str) -> IndexBuilder | None:
        url, name = self.url, _chroma_name(collection)

        def build(dimensions: int) -> VectorIndex:
            from gatehouse.rag.chroma import ChromaVectorIndex

            return ChromaVectorIndex(url, name, dimensions)

        return build

    def drop(self, collection: str) -> None:
        from gatehouse.rag.chroma import ChromaVectorIndex

        ChromaVectorIndex(self.url, _chroma_name(collection), 0).drop()


def _chroma_name(collection: str) -> str:
    return f"gatehouse-{collection}"


def _embedded(config: RagConfig) -> VectorBackend:
    return EmbeddedBackend()


def _chroma(config: RagConfig) -> VectorBackend:
    # RagConfig refuses vector_backend chroma without chroma_url.
    assert config.chroma_url
    return ChromaBackend(config.chroma_url)


BACKENDS: dict[VectorBackendName, Callable[[RagConfig], VectorBackend]] = {
    "embedded": _embedded,
    "chroma": _chroma,
}


def vector_backend(config: RagConfig) -> VectorBackend:
    """The backend that ``config`` names (``rag.vector_backend``)."""
    return BACKENDS[config.vector_backend](config)
