"""Retrieval-augmented generation: collections, ingestion, hybrid search, grounded answers.

The engine is a gateway client: embeddings and chat go through
:class:`~gatehouse.gateway.Gateway`, never to a model directly.
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
]
