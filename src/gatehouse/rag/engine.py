"""The RAG engine: the one object server routes and the CLI call.

A facade over four parts, one job each:

- :class:`~gatehouse.rag.catalog.Catalog`: collections (create, list,
  describe, open, delete) and who may see them;
- :class:`~gatehouse.rag.ingestion.Ingestion`: documents in and out;
- :class:`~gatehouse.rag.searching.Searcher`: search, expansion, reranking;
- :class:`~gatehouse.rag.answering.Answerer`: grounded answers with citations.

Every operation runs as a caller (a :class:`Principal`; the in-process one by
default). A caller sees only the collections it may access (see
:mod:`gatehouse.rag.access`; others are 404), and every model call that an
operation makes (embeddings, generation, query rewriting, LLM reranking)
goes through the gateway's whole pipeline as that caller, tagged in the
ledger with the operation (``rag.ingest``, ``rag.search``, ``rag.answer``).
Where collection vectors live is a :class:`~gatehouse.rag.vector_backends.VectorBackend`.
Ingests, searches and answers are reported to a
:class:`~gatehouse.rag.observer.RagObserver` (the server's metrics).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

from gatehouse.core.errors import error_type
from gatehouse.core.principal import LOCAL, Principal
from gatehouse.gateway import Gateway
from gatehouse.gateway.remote import RemoteGateway
from gatehouse.rag.access import OwnerKind
from gatehouse.rag.answering import CONTEXT_TOKENS, Answerer
from gatehouse.rag.catalog import Catalog
from gatehouse.rag.collection import Collection
from gatehouse.rag.embedder import Embedder
from gatehouse.rag.ingestion import MAX_DOCUMENT_CHARS, Ingestion
from gatehouse.rag.model_calls import ModelCalls
from gatehouse.rag.models import (
    AnswerEvent,
    AnswerRequest,
    AnswerResponse,
    CollectionInfo,
    CollectionSpec,
    DocumentIn,
    DocumentInfo,
    Expansion,
    IngestResult,
    Rerank,
    SearchHit,
)
from gatehouse.rag.observer import NullRagObserver, Operation, RagObserver
from gatehouse.rag.retrieval import Mode
from gatehouse.rag.searching import Searcher
from gatehouse.rag.vector import ANN_THRESHOLD
from gatehouse.rag.vector_backends import VectorBackend


class RagEngine:
    """Collections under ``root``; embeddings and chat go through ``gateway`` (in
    this process, or another one over HTTP)."""

    def __init__(
        self,
        root: Path,
        gateway: Gateway | RemoteGateway | None,
        *,
        embedder: Embedder | None = None,
        max_document_chars: int = MAX_DOCUMENT_CHARS,
        answer_model: str = "default",
        context_tokens: int = CONTEXT_TOKENS,
        vector_backend: VectorBackend | None = None,
        ann_threshold: int = ANN_THRESHOLD,
        observer: RagObserver | None = None,
    ) -> None:
        """``vector_backend``: where collection vectors live (default: the embedded
        index; see :func:`gatehouse.rag.vector_backends.vector_backend` for the one
        the configuration names); ``ann_threshold``: chunks from which the embedded
        index searches an HNSW graph; ``embedder`` embeds in process instead of
        through the gateway; ``observer`` hears of each ingest, search and answer."""
        self.root = root
        self.observer: RagObserver = observer or NullRagObserver()
        self.gateway = gateway
        self.answer_model = answer_model
        self.catalog = Catalog(root, vectors=vector_backend, ann_threshold=ann_threshold)
        self.models = models = ModelCalls(gateway, embedder)  # model calls, as some caller
        self.ingestion = Ingestion(self.catalog, models, max_document_chars=max_document_chars)
        self.searcher = Searcher(self.catalog, models, chat_model=answer_model)
        self.answerer = Answerer(
            self.catalog,
            models,
            self.searcher,
            answer_model=answer_model,
            context_tokens=context_tokens,
        )

    @property
    def vector_backend(self) -> VectorBackend:
        """Where collection vectors live."""
        return self.catalog.vectors

    @property
    def ann_threshold(self) -> int:
        return self.catalog.ann_threshold

    @property
    def max_document_chars(self) -> int:
        return self.ingestion.max_document_chars

    @property
    def context_tokens(self) -> int:
        return self.answerer.context_tokens

    # -- collections --

    def create_collection(
        self, spec: CollectionSpec, *, caller: Principal = LOCAL, owner: OwnerKind | None = None
    ) -> CollectionInfo:
        """A new collection owned by ``caller``'s team (or key, or ``owner``).

        Names are global, like bucket names: a name taken by any owner is a 409.
        """
        return self.catalog.create(spec, caller=caller, owner=owner)

    def collections(self, *, caller: Principal = LOCAL) -> list[CollectionInfo]:
        """The collections ``caller`` may access, by name."""
        return self.catalog.collections(caller=caller)

    def describe(self, name: str, *, caller: Principal = LOCAL) -> CollectionInfo:
        """``name``'s settings, owner and counts."""
        return self.catalog.describe(name, caller=caller)

    def delete_collection(self, name: str, *, caller: Principal = LOCAL) -> None:
        """Delete ``name`` and its vectors."""
        self.catalog.delete(name, caller=caller)

    def collection(self, name: str, *, caller: Principal = LOCAL) -> Collection:
        """The open collection ``name``; 404 when absent or not ``caller``'s to see."""
        return self.catalog.open(name, caller=caller)

    # -- documents --

    def validate(self, documents: Sequence[DocumentIn]) -> None:
        """Reject empty or over-long documents before anything is written."""
        self.ingestion.validate(documents)

    async def add_documents(
        self, name: str, documents: Sequence[DocumentIn], *, caller: Principal = LOCAL
    ) -> IngestResult:
        """Ingest documents: unchanged ones are skipped, changed ones replaced atomically.

        Every document is validated before anything is written; the whole
        batch is then written in one transaction.
        """
        with self._observed(caller, "ingest"):
            result = await self.ingestion.add(name, documents, caller=caller)
        self.observer.ingested(
            caller.team, result.added, result.replaced, result.unchanged, result.chunks
        )
        return result

    async def index(self, name: str, *, caller: Principal = LOCAL) -> None:
        """Load ``name``'s search indexes here and bring them (and the saved graph) up to date.

        ``gatehouse ingest`` calls it after a run that wrote a large collection,
        so the server's first open loads the graph instead of building it.
        """
        await self.ingestion.index(name, caller=caller)

    def documents(
        self, name: str, *, limit: int = 100, after: str = "", caller: Principal = LOCAL
    ) -> list[DocumentInfo]:
        """Up to ``limit`` documents of ``name`` by id, after the id ``after``."""
        return self.ingestion.documents(name, limit=limit, after=after, caller=caller)

    def document(
        self, name: str, document_id: str, *, caller: Principal = LOCAL
    ) -> tuple[DocumentInfo, list[dict[str, object]]]:
        """One document of ``name`` and its chunks; 404 when absent."""
        return self.ingestion.document(name, document_id, caller=caller)

    def delete_documents(
        self, name: str, document_ids: Sequence[str], *, caller: Principal = LOCAL
    ) -> int:
        """Delete documents of ``name``; the number that existed."""
        return self.ingestion.delete(name, document_ids, caller=caller)

    def prune(self, name: str, prefix: str, keep: set[str]) -> int:
        """Delete documents whose source starts with ``prefix`` and is not in ``keep``."""
        return self.ingestion.prune(name, prefix, keep)

    # -- search --

    async def search(
        self,
        name: str,
        query: str,
        *,
        top_k: int = 10,
        mode: Mode = "hybrid",
        where: dict[str, object] | None = None,
        diversity: float | None = None,
        expansion: Expansion = "none",
        rerank: Rerank = "none",
        caller: Principal = LOCAL,
    ) -> list[SearchHit]:
        """Best chunks for ``query``. ``expansion`` rewrites the query through the
        chat model first: ``multi_query`` searches several phrasings and fuses
        them by RRF; ``hyde`` adds a hypothetical answer passage to the dense query.
        ``rerank`` reorders the hits: ``llm`` by the chat model's grades,
        ``cross_encoder`` by the collection's cross-encoder."""
        self.observer.queried(caller.team, "search", mode)
        with self._observed(caller, "search"):
            return await self.searcher.search(
                name,
                query,
                top_k=top_k,
                mode=mode,
                where=where,
                diversity=diversity,
                expansion=expansion,
                rerank=rerank,
                caller=caller,
            )

    # -- answers --

    async def answer(
        self, name: str, request: AnswerRequest, *, caller: Principal = LOCAL
    ) -> AnswerResponse:
        """A grounded answer with numbered citations (not streamed)."""
        self.observer.queried(caller.team, "answer", "hybrid")
        with self._observed(caller, "answer"):
            return await self.answerer.answer(name, request, caller=caller)

    async def answer_stream(
        self, name: str, request: AnswerRequest, *, caller: Principal = LOCAL
    ) -> AsyncIterator[AnswerEvent]:
        """The answer as events: the results, then text deltas, then the citations."""
        self.observer.queried(caller.team, "answer", "hybrid")
        with self._observed(caller, "answer"):
            async for event in self.answerer.stream(name, request, caller=caller):
                yield event

    @contextlib.contextmanager
    def _observed(self, caller: Principal, operation: Operation) -> Iterator[None]:
        """Report how long ``operation`` took and, if it failed, how."""
        started, error = time.monotonic(), None
        try:
            yield
        except Exception as exc:
            error = error_type(exc)
            raise
        finally:
            self.observer.finished(caller.team, operation, time.monotonic() - started, error)
