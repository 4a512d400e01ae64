"""Retrieval-augmented generation: collections, ingestion, hybrid search, grounded answers.

The engine is a gateway client: embeddings and chat go through
:class:`~gatehouse.gateway.Gateway`, never to a model directly.
:class:`RagEngine` is the facade; its parts are ``catalog``, ``ingestion``,
``searching`` and ``answering``. :func:`vector_backend` picks where vectors
live from the ``rag`` settings.
"""

from gatehouse.rag.engine import RagEngine
from gatehouse.rag.models import (
    AddDocumentsRequest,
    AnswerEvent,
    AnswerRequest,
    AnswerResponse,
    ChunkingConfig,
    CollectionCreate,
    CollectionInfo,
    CollectionSpec,
    DocumentIn,
    DocumentInfo,
    IngestResult,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from gatehouse.rag.vector_backends import VectorBackend, vector_backend

__all__ = [
    "AddDocumentsRequest",
    "AnswerEvent",
    "AnswerRequest",
    "AnswerResponse",
    "ChunkingConfig",
    "CollectionCreate",
    "CollectionInfo",
    "CollectionSpec",
    "DocumentIn",
    "DocumentInfo",
    "IngestResult",
    "RagEngine",
    "SearchHit",
    "SearchRequest",
    "SearchResponse",
    "VectorBackend",
    "vector_backend",
]
