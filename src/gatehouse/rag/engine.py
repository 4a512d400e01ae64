"""The RAG engine: collections on disk, ingestion, search. What server and CLI call.

Collections live under ``<data_dir>/rag/<name>/`` (``collection.json`` with
the settings, ``chunks.db`` with everything else). Creating a collection
writes its folder under a temporary name and renames it into place, so a
half-created collection is never visible.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import numpy as np
import orjson

from gatehouse.core.errors import (
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from gatehouse.core.types import ChatCompletionRequest, ChatMessage
from gatehouse.gateway import Gateway
from gatehouse.rag.answer import NO_ANSWER, Context, assemble, citations
from gatehouse.rag.collection import Collection
from gatehouse.rag.cross_encoder import CrossEncoderReranker
from gatehouse.rag.embedder import Embedder, GatewayEmbedder
from gatehouse.rag.fusion import rrf
from gatehouse.rag.index import VectorIndex
from gatehouse.rag.ingest import chunk_documents, content_hash, generated_id
from gatehouse.rag.models import (
    AnswerEvent,
    AnswerRequest,
    AnswerResponse,
    CitationOut,
    CollectionInfo,
    CollectionSpec,
    DocumentIn,
    DocumentInfo,
    Expansion,
    IngestResult,
    Rerank,
    SearchHit,
)
from gatehouse.rag.query import condense, hypothetical_document, multi_query
from gatehouse.rag.rerank import LLMReranker, Reranker
from gatehouse.rag.retrieval import Mode, Query
from gatehouse.rag.store import DocumentRecord, Store
from gatehouse.rag.text import analyze
from gatehouse.rag.tokenizer import tokenizer_for
from gatehouse.rag.vector import ANN_THRESHOLD

MAX_DOCUMENT_CHARS = 2_000_000
# The default chat model has a 2048-token window: keep the sources well inside it.
CONTEXT_TOKENS = 900
ANSWER_TOP_K = 4
ANSWER_MAX_TOKENS = 256
HISTORY_TURNS = 4
MIN_DENSE_SIMILARITY = 0.3


class RagEngine:
    """Collections under ``root``; embeddings and chat go through ``gateway``."""

    def __init__(
        self,
        root: Path,
        gateway: Gateway | None,
        *,
        embedder: Embedder | None = None,
        max_document_chars: int = MAX_DOCUMENT_CHARS,
        answer_model: str = "default",
        context_tokens: int = CONTEXT_TOKENS,
        chroma_url: str | None = None,
        ann_threshold: int = ANN_THRESHOLD,
    ) -> None:
        """``chroma_url`` keeps vectors in that Chroma server instead of in process;
        ``ann_threshold``: chunks from which the embedded index searches an HNSW graph."""
        self.ann_threshold = ann_threshold
        self.chroma_url = chroma_url
        self.answer_model = answer_model
        self.context_tokens = context_tokens
        self.root = root
        self.gateway = gateway
        self._embedder = embedder
        self.max_document_chars = max_document_chars
        self._open: dict[str, Collection] = {}
        self._cross_encoders: dict[str, CrossEncoderReranker] = {}

    # -- collections --

    def create_collection(self, spec: CollectionSpec) -> CollectionInfo:
        target = self.root / spec.name
        if target.exists():
            raise ConflictError(f"collection '{spec.name}' already exists", param="name")
        if spec.cross_encoder is not None:
            path = Path(spec.cross_encoder).expanduser().resolve()
            CrossEncoderReranker(path)  # checks the folder: a clear error now, not at search
            spec = spec.model_copy(update={"cross_encoder": str(path)})
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".new-{uuid.uuid4().hex}"
        staging.mkdir()
        record = {**spec.model_dump(), "created_at": int(time.time())}
        (staging / "collection.json").write_bytes(orjson.dumps(record))
        Store(staging).close()
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise ConflictError(f"collection '{spec.name}' already exists", param="name") from None
        return self.describe(spec.name)

    def collections(self) -> list[CollectionInfo]:
        if not self.root.is_dir():
            return []
        names = sorted(p.name for p in self.root.iterdir() if (p / "collection.json").is_file())
        return [self.describe(name) for name in names]

    def describe(self, name: str) -> CollectionInfo:
        collection = self.collection(name)
        record = orjson.loads((collection.directory / "collection.json").read_bytes())
        with _closing(collection.store()) as store:
            documents, chunks = store.counts()
            dimensions = store.dimensions()
        return CollectionInfo(
            **collection.spec.model_dump(),
            documents=documents,
            chunks=chunks,
            dimensions=dimensions,
            created_at=int(record.get("created_at", 0)),
        )

    def _chroma_backend(self, name: str) -> Callable[[int], VectorIndex] | None:
        if self.chroma_url is None:
            return None
        url = self.chroma_url

        def build(dimensions: int) -> VectorIndex:
            from gatehouse.rag.chroma import ChromaVectorIndex

            return ChromaVectorIndex(url, f"gatehouse-{name}", dimensions)

        return build

    def delete_collection(self, name: str) -> None:
        directory = self.collection(name).directory
        if self.chroma_url is not None:
            from gatehouse.rag.chroma import ChromaVectorIndex

            ChromaVectorIndex(self.chroma_url, f"gatehouse-{name}", 0).drop()
        self._open.pop(name, None)
        # Rename first: readers stop seeing it at once, and a crash mid-delete
        # leaves a hidden folder rather than a broken collection.
        trash = self.root / f".deleted-{uuid.uuid4().hex}"
        directory.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def collection(self, name: str) -> Collection:
        directory = self.root / name
        config = directory / "collection.json"
        if not name or name.startswith(".") or "/" in name or not config.is_file():
            self._open.pop(name, None)
            raise NotFoundError(f"collection '{name}' does not exist", param="collection")
        opened = self._open.get(name)
        if opened is None:
            record = orjson.loads(config.read_bytes())
            spec = CollectionSpec.model_validate(
                {k: v for k, v in record.items() if k in CollectionSpec.model_fields}
            )
            opened = self._open[name] = Collection(
                directory,
                spec,
                ann_threshold=self.ann_threshold,
                vector_backend=self._chroma_backend(name),
            )
        return opened

    # -- documents --

    def validate(self, documents: Sequence[DocumentIn]) -> None:
        """Reject empty or over-long documents before anything is written."""
        for index, document in enumerate(documents):
            if not document.text.strip():
                raise ValidationFailedError(
                    f"documents[{index}].text is empty", param=f"documents[{index}].text"
                )
            if len(document.text) > self.max_document_chars:
                raise ValidationFailedError(
                    f"documents[{index}] has {len(document.text)} characters; the limit is "
                    f"{self.max_document_chars}",
                    param=f"documents[{index}].text",
                )

    async def add_documents(
        self, name: str, documents: Sequence[DocumentIn], *, prune_source_prefix: str | None = None
    ) -> IngestResult:
        """Ingest documents: unchanged ones are skipped, changed ones replaced atomically.

        Every document is validated before anything is written; the whole
        batch is then written in one transaction.
        """
        collection = self.collection(name)
        spec = collection.spec
        self.validate(documents)
        ids = [d.id or generated_id(d) for d in documents]
        if len(set(ids)) != len(ids):
            raise ValidationFailedError(
                "document ids in one request must be unique", param="documents"
            )
        result = IngestResult()
        pending: list[tuple[DocumentRecord, DocumentIn, bool]] = []
        with _closing(collection.store()) as store:
            for doc_id, document in zip(ids, documents, strict=True):
                digest = content_hash(document, spec)
                existing = store.document(doc_id)
                if existing is not None and existing.content_hash == digest:
                    result.unchanged += 1
                    continue
                record = DocumentRecord(
                    id=doc_id,
                    title=document.title,
                    source=document.source,
                    content_hash=digest,
                    metadata=dict(document.metadata),
                    chunks=0,
                    updated_at=int(time.time()),
                )
                pending.append((record, document, existing is not None))
            if not pending:
                return result
            chunked = await chunk_documents(
                [(document, record.id) for record, document, _ in pending],
                spec,
                self._embedder_for(spec),
            )
            batch = []
            for (record, _, replacing), chunks in zip(pending, chunked, strict=True):
                result.chunks += len(chunks)
                if replacing:
                    result.replaced += 1
                else:
                    result.added += 1
                batch.append((record, chunks))
            store.put_documents(batch)
        if collection.loaded:
            # Searches here would catch up anyway; doing it now keeps graph
            # building (and saving) out of the next query's time.
            await asyncio.to_thread(collection.sync)
        return result

    async def index(self, name: str) -> None:
        """Load ``name``'s search indexes here and bring them (and the saved graph) up to date.

        ``gatehouse ingest`` calls it after a run that wrote a large collection,
        so the server's first open loads the graph instead of building it.
        """
        await asyncio.to_thread(self.collection(name).sync)

    def documents(self, name: str, *, limit: int = 100, after: str = "") -> list[DocumentInfo]:
        with _closing(self.collection(name).store()) as store:
            return [_info(r) for r in store.documents(limit=limit, after=after)]

    def document(self, name: str, document_id: str) -> tuple[DocumentInfo, list[dict[str, object]]]:
        with _closing(self.collection(name).store()) as store:
            record = store.document(document_id)
            if record is None:
                raise NotFoundError(
                    f"document '{document_id}' does not exist in collection '{name}'",
                    param="document_id",
                )
            return _info(record), store.chunks_of(document_id)

    def delete_documents(self, name: str, document_ids: Sequence[str]) -> int:
        with _closing(self.collection(name).store()) as store:
            return store.delete_documents(document_ids)

    def prune(self, name: str, prefix: str, keep: set[str]) -> int:
        """Delete documents whose source starts with ``prefix`` and is not in ``keep``."""
        with _closing(self.collection(name).store()) as store:
            gone = [
                doc for doc, source in store.document_ids_for_sources(prefix) if source not in keep
            ]
            return store.delete_documents(gone) if gone else 0

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
    ) -> list[SearchHit]:
        """Best chunks for ``query``. ``expansion`` rewrites the query through the
        chat model first: ``multi_query`` searches several phrasings and fuses
        them by RRF; ``hyde`` adds a hypothetical answer passage to the dense query.
        ``rerank`` reorders the hits: ``llm`` by the chat model's grades,
        ``cross_encoder`` by the collection's cross-encoder."""
        if rerank != "none":
            reranker = self._reranker(name, rerank)
            hits = await self.search(
                name,
                query,
                top_k=top_k,
                mode=mode,
                where=where,
                diversity=diversity,
                expansion=expansion,
            )
            return await reranker.rerank(query, hits)
        collection = self.collection(name)
        spec = collection.spec
        if expansion == "multi_query":
            return await self._multi_query(name, query, top_k, mode, where, diversity)
        vector = None
        if mode != "keyword":
            texts = [query]
            if expansion == "hyde":
                texts.append(await hypothetical_document(self._gateway(), self.answer_model, query))
            vectors = await self._embedder_for(spec).embed(texts)
            mean = vectors.mean(axis=0)
            vector = mean / max(float(np.linalg.norm(mean)), 1e-12)
        tokens = tokenizer_for(spec.embedding_model)
        prepared = Query(
            text=query,
            terms=analyze(query, spec.language),
            vector=vector,
            coverage=tokens.coverage(query),
        )
        return await asyncio.to_thread(
            collection.search, prepared, top_k=top_k, mode=mode, where=where, diversity=diversity
        )

    async def _multi_query(
        self,
        name: str,
        query: str,
        top_k: int,
        mode: Mode,
        where: dict[str, object] | None,
        diversity: float | None,
    ) -> list[SearchHit]:
        queries = await multi_query(self._gateway(), self.answer_model, query)
        lists: dict[str, list[tuple[str, float]]] = {}
        hits: dict[str, SearchHit] = {}
        for index, text in enumerate(queries):
            found = await self.search(
                name, text, top_k=top_k, mode=mode, where=where, diversity=diversity
            )
            lists[str(index)] = [(h.chunk_id, h.score) for h in found]
            hits.update((h.chunk_id, h) for h in found if h.chunk_id not in hits)
        return [
            hits[chunk_id].model_copy(update={"score": score})
            for chunk_id, score in rrf(lists)[:top_k]
        ]

    async def prepare_answer(
        self, name: str, request: AnswerRequest
    ) -> tuple[Context | None, list[SearchHit]]:
        """Retrieve for ``request`` and build the model's context.

        The context is ``None`` when nothing relevant was found: no retrieved
        chunk shares a keyword with the question and none is semantically
        close (cosine below ``MIN_DENSE_SIMILARITY``).
        """
        top_k = request.top_k or ANSWER_TOP_K
        history = [ChatMessage(role=m.role, content=m.content) for m in request.history]
        if request.condense and history:
            standalone = await condense(self._gateway(), self.answer_model, history, request.query)
            request = request.model_copy(update={"query": standalone})
        hits = await self.search(
            name, request.query, top_k=top_k, where=request.filter, expansion=request.expansion
        )
        if not hits:
            return None, hits
        spec = self.collection(name).spec
        keyword = await self.search(
            name, request.query, top_k=1, mode="keyword", where=request.filter
        )
        dense = await self.search(name, request.query, top_k=1, mode="dense", where=request.filter)
        if not keyword and (not dense or dense[0].score < MIN_DENSE_SIMILARITY):
            return None, hits
        context = assemble(
            request.query,
            hits,
            tokenizer_for(spec.embedding_model),
            self.context_tokens,
            history[-HISTORY_TURNS:],
        )
        return context, hits

    def chat_request(self, context: Context, request: AnswerRequest) -> ChatCompletionRequest:
        return ChatCompletionRequest(
            model=request.model or self.answer_model,
            messages=context.messages,
            max_tokens=request.max_tokens or ANSWER_MAX_TOKENS,
            temperature=0.0,
        )

    async def answer(self, name: str, request: AnswerRequest) -> AnswerResponse:
        """A grounded answer with numbered citations (not streamed)."""
        context, hits = await self.prepare_answer(name, request)
        if context is None:
            return AnswerResponse(answer=NO_ANSWER, citations=[], results=hits)
        completion = await self._gateway().chat(self.chat_request(context, request))
        text = completion.choices[0].message.content or ""
        cited = [CitationOut(**c.model_dump()) for c in citations(text, context.sources)]
        return AnswerResponse(answer=text.strip(), citations=cited, results=hits)

    async def answer_stream(self, name: str, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        """The answer as events: the results, then text deltas, then the citations."""
        context, hits = await self.prepare_answer(name, request)
        yield AnswerEvent(type="results", results=hits)
        if context is None:
            yield AnswerEvent(type="delta", content=NO_ANSWER)
            yield AnswerEvent(type="done", answer=NO_ANSWER, citations=[])
            return
        parts: list[str] = []
        async for chunk in await self._gateway().chat_stream(self.chat_request(context, request)):
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
                    yield AnswerEvent(type="delta", content=choice.delta.content)
        text = "".join(parts).strip()
        cited = [CitationOut(**c.model_dump()) for c in citations(text, context.sources)]
        yield AnswerEvent(type="done", answer=text, citations=cited)

    def _reranker(self, name: str, kind: Rerank) -> Reranker:
        if kind == "llm":
            return LLMReranker(self._gateway(), self.answer_model)
        configured = self.collection(name).spec.cross_encoder
        if configured is None:
            raise ValidationFailedError(
                f"collection '{name}' has no cross_encoder setting (no cross-encoder ships "
                "with gatehouse): create the collection with cross_encoder set to the folder "
                "of a sentence-transformers CrossEncoder",
                param="rerank",
            )
        reranker = self._cross_encoders.get(configured)
        if reranker is None:
            reranker = self._cross_encoders[configured] = CrossEncoderReranker(Path(configured))
        return reranker

    def _gateway(self) -> Gateway:
        if self.gateway is None:
            raise ServiceUnavailableError("no gateway configured for answering")
        return self.gateway

    def _embedder_for(self, spec: CollectionSpec) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        if self.gateway is None:
            raise ValidationFailedError("no gateway configured for embeddings")
        return GatewayEmbedder(self.gateway, spec.embedding_model)


class _closing:
    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def _info(record: DocumentRecord) -> DocumentInfo:
    return DocumentInfo(
        id=record.id,
        title=record.title,
        source=record.source,
        content_hash=record.content_hash,
        metadata=record.metadata,
        chunks=record.chunks,
        updated_at=record.updated_at,
    )
