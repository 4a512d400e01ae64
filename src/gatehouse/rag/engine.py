"""The RAG engine: collections on disk, ingestion, search. What server and CLI call.

Every operation runs as a caller (a :class:`Principal`; the in-process one by
default). A caller sees only the collections it may access (see
:mod:`gatehouse.rag.access`; others are 404), and every model call that an
operation makes (embeddings, generation, query rewriting, LLM reranking)
goes through the gateway's whole pipeline as that caller, tagged in the
ledger with the operation (``rag.ingest``, ``rag.search``, ``rag.answer``).

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from gatehouse.core.errors import (
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from gatehouse.core.principal import LOCAL, Principal
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    EmbeddingRequest,
    EmbeddingResponse,
)
from gatehouse.gateway import CallerClient, ChatStream, Gateway, ModelClient
from gatehouse.rag.access import Owner, OwnerKind, may_access, owner_for
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

    def create_collection(
        self, spec: CollectionSpec, *, caller: Principal = LOCAL, owner: OwnerKind | None = None
    ) -> CollectionInfo:
        """A new collection owned by ``caller``'s team (or key, or ``owner``).

        Names are global, like bucket names: a name taken by any owner is a 409.
        """
        owned_by = owner_for(caller, owner)
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
        record = {
            **spec.model_dump(),
            "created_at": int(time.time()),
            "owner": None if owned_by is None else owned_by.model_dump(),
        }
        (staging / "collection.json").write_bytes(orjson.dumps(record))
        Store(staging).close()
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise ConflictError(f"collection '{spec.name}' already exists", param="name") from None
        return self.describe(spec.name, caller=caller)

    def collections(self, *, caller: Principal = LOCAL) -> list[CollectionInfo]:
        """The collections ``caller`` may access, by name."""
        if not self.root.is_dir():
            return []
        names = sorted(p.name for p in self.root.iterdir() if (p / "collection.json").is_file())
        found = []
        for name in names:
            try:
                found.append(self.describe(name, caller=caller))
            except NotFoundError:  # not the caller's, or deleted meanwhile
                continue
        return found

    def describe(self, name: str, *, caller: Principal = LOCAL) -> CollectionInfo:
        collection = self.collection(name, caller=caller)
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
            owner=collection.owner,
        )

    def _chroma_backend(self, name: str) -> Callable[[int], VectorIndex] | None:
        if self.chroma_url is None:
            return None
        url = self.chroma_url

        def build(dimensions: int) -> VectorIndex:
            from gatehouse.rag.chroma import ChromaVectorIndex

            return ChromaVectorIndex(url, f"gatehouse-{name}", dimensions)

        return build

    def delete_collection(self, name: str, *, caller: Principal = LOCAL) -> None:
        directory = self.collection(name, caller=caller).directory
        if self.chroma_url is not None:
            from gatehouse.rag.chroma import ChromaVectorIndex

            ChromaVectorIndex(self.chroma_url, f"gatehouse-{name}", 0).drop()
        self._forget(name)
        # Rename first: readers stop seeing it at once, and a crash mid-delete
        # leaves a hidden folder rather than a broken collection.
        trash = self.root / f".deleted-{uuid.uuid4().hex}"
        directory.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def collection(self, name: str, *, caller: Principal = LOCAL) -> Collection:
        """The open collection ``name``; 404 when absent or not ``caller``'s to see."""
        directory = self.root / name
        config = directory / "collection.json"
        missing = NotFoundError(f"collection '{name}' does not exist", param="collection")
        if not name or name.startswith(".") or "/" in name or not config.is_file():
            self._forget(name)
            raise missing
        opened = self._open.get(name)
        if opened is None:
            record = orjson.loads(config.read_bytes())
            spec = CollectionSpec.model_validate(
                {k: v for k, v in record.items() if k in CollectionSpec.model_fields}
            )
            owner = record.get("owner")
            opened = self._open[name] = Collection(
                directory,
                spec,
                ann_threshold=self.ann_threshold,
                vector_backend=self._chroma_backend(name),
                owner=None if owner is None else Owner.model_validate(owner),
            )
        if not may_access(opened.owner, caller):
            raise missing
        return opened

    def _forget(self, name: str) -> None:
        closed = self._open.pop(name, None)
        if closed is not None:
            closed.close()

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
        self, name: str, documents: Sequence[DocumentIn], *, caller: Principal = LOCAL
    ) -> IngestResult:
        """Ingest documents: unchanged ones are skipped, changed ones replaced atomically.

        Every document is validated before anything is written; the whole
        batch is then written in one transaction.
        """
        collection = self.collection(name, caller=caller)
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
                self._embedder_for(spec, self._client(caller, "rag.ingest")),
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

    async def index(self, name: str, *, caller: Principal = LOCAL) -> None:
        """Load ``name``'s search indexes here and bring them (and the saved graph) up to date.

        ``gatehouse ingest`` calls it after a run that wrote a large collection,
        so the server's first open loads the graph instead of building it.
        """
        await asyncio.to_thread(self.collection(name, caller=caller).sync)

    def documents(
        self, name: str, *, limit: int = 100, after: str = "", caller: Principal = LOCAL
    ) -> list[DocumentInfo]:
        with _closing(self.collection(name, caller=caller).store()) as store:
            return [_info(r) for r in store.documents(limit=limit, after=after)]

    def document(
        self, name: str, document_id: str, *, caller: Principal = LOCAL
    ) -> tuple[DocumentInfo, list[dict[str, object]]]:
        with _closing(self.collection(name, caller=caller).store()) as store:
            record = store.document(document_id)
            if record is None:
                raise NotFoundError(
                    f"document '{document_id}' does not exist in collection '{name}'",
                    param="document_id",
                )
            return _info(record), store.chunks_of(document_id)

    def delete_documents(
        self, name: str, document_ids: Sequence[str], *, caller: Principal = LOCAL
    ) -> int:
        with _closing(self.collection(name, caller=caller).store()) as store:
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
        caller: Principal = LOCAL,
    ) -> list[SearchHit]:
        """Best chunks for ``query``. ``expansion`` rewrites the query through the
        chat model first: ``multi_query`` searches several phrasings and fuses
        them by RRF; ``hyde`` adds a hypothetical answer passage to the dense query.
        ``rerank`` reorders the hits: ``llm`` by the chat model's grades,
        ``cross_encoder`` by the collection's cross-encoder."""
        collection = self.collection(name, caller=caller)
        client = self._client(caller, "rag.search")
        wanted = _Wanted(top_k, mode, where, diversity)
        hits = await self._search(collection, query, wanted, expansion, client)
        if rerank == "none":
            return hits
        return await self._reranker(collection, rerank, client).rerank(query, hits)

    async def _search(
        self,
        collection: Collection,
        query: str,
        wanted: _Wanted,
        expansion: Expansion,
        client: ModelClient,
    ) -> list[SearchHit]:
        spec = collection.spec
        if expansion == "multi_query":
            return await self._multi_query(collection, query, wanted, client)
        vector = None
        if wanted.mode != "keyword":
            texts = [query]
            if expansion == "hyde":
                texts.append(await hypothetical_document(client, self.answer_model, query))
            vectors = await self._embedder_for(spec, client).embed(texts)
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
            collection.search,
            prepared,
            top_k=wanted.top_k,
            mode=wanted.mode,
            where=wanted.where,
            diversity=wanted.diversity,
        )

    async def _multi_query(
        self, collection: Collection, query: str, wanted: _Wanted, client: ModelClient
    ) -> list[SearchHit]:
        queries = await multi_query(client, self.answer_model, query)
        lists: dict[str, list[tuple[str, float]]] = {}
        hits: dict[str, SearchHit] = {}
        for index, text in enumerate(queries):
            found = await self._search(collection, text, wanted, "none", client)
            lists[str(index)] = [(h.chunk_id, h.score) for h in found]
            hits.update((h.chunk_id, h) for h in found if h.chunk_id not in hits)
        return [
            hits[chunk_id].model_copy(update={"score": score})
            for chunk_id, score in rrf(lists)[: wanted.top_k]
        ]

    async def prepare_answer(
        self, name: str, request: AnswerRequest, *, caller: Principal = LOCAL
    ) -> tuple[Context | None, list[SearchHit]]:
        """Retrieve for ``request`` and build the model's context.

        The context is ``None`` when nothing relevant was found: no retrieved
        chunk shares a keyword with the question and none is semantically
        close (cosine below ``MIN_DENSE_SIMILARITY``).
        """
        collection = self.collection(name, caller=caller)
        return await self._prepare_answer(collection, request, self._client(caller, "rag.answer"))

    async def _prepare_answer(
        self, collection: Collection, request: AnswerRequest, client: ModelClient
    ) -> tuple[Context | None, list[SearchHit]]:
        top_k = request.top_k or ANSWER_TOP_K
        history = [ChatMessage(role=m.role, content=m.content) for m in request.history]
        if request.condense and history:
            standalone = await condense(client, self.answer_model, history, request.query)
            request = request.model_copy(update={"query": standalone})
        query, where = request.query, request.filter
        hybrid = _Wanted(top_k, "hybrid", where)
        hits = await self._search(collection, query, hybrid, request.expansion, client)
        if not hits:
            return None, hits
        keyword = await self._search(
            collection, query, _Wanted(1, "keyword", where), "none", client
        )
        dense = await self._search(collection, query, _Wanted(1, "dense", where), "none", client)
        if not keyword and (not dense or dense[0].score < MIN_DENSE_SIMILARITY):
            return None, hits
        context = assemble(
            request.query,
            hits,
            tokenizer_for(collection.spec.embedding_model),
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

    async def answer(
        self, name: str, request: AnswerRequest, *, caller: Principal = LOCAL
    ) -> AnswerResponse:
        """A grounded answer with numbered citations (not streamed)."""
        collection = self.collection(name, caller=caller)
        client = self._client(caller, "rag.answer")
        context, hits = await self._prepare_answer(collection, request, client)
        if context is None:
            return AnswerResponse(answer=NO_ANSWER, citations=[], results=hits)
        completion = await client.chat(self.chat_request(context, request))
        text = completion.choices[0].message.content or ""
        cited = [CitationOut(**c.model_dump()) for c in citations(text, context.sources)]
        return AnswerResponse(answer=text.strip(), citations=cited, results=hits)

    async def answer_stream(
        self, name: str, request: AnswerRequest, *, caller: Principal = LOCAL
    ) -> AsyncIterator[AnswerEvent]:
        """The answer as events: the results, then text deltas, then the citations."""
        collection = self.collection(name, caller=caller)
        client = self._client(caller, "rag.answer")
        context, hits = await self._prepare_answer(collection, request, client)
        yield AnswerEvent(type="results", results=hits)
        if context is None:
            yield AnswerEvent(type="delta", content=NO_ANSWER)
            yield AnswerEvent(type="done", answer=NO_ANSWER, citations=[])
            return
        parts: list[str] = []
        async for chunk in await client.chat_stream(self.chat_request(context, request)):
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
                    yield AnswerEvent(type="delta", content=choice.delta.content)
        text = "".join(parts).strip()
        cited = [CitationOut(**c.model_dump()) for c in citations(text, context.sources)]
        yield AnswerEvent(type="done", answer=text, citations=cited)

    def _reranker(self, collection: Collection, kind: Rerank, client: ModelClient) -> Reranker:
        if kind == "llm":
            return LLMReranker(client, self.answer_model)
        configured = collection.spec.cross_encoder
        if configured is None:
            raise ValidationFailedError(
                f"collection '{collection.spec.name}' has no cross_encoder setting (no "
                "cross-encoder ships with gatehouse): create the collection with cross_encoder "
                "set to the folder of a sentence-transformers CrossEncoder",
                param="rerank",
            )
        reranker = self._cross_encoders.get(configured)
        if reranker is None:
            reranker = self._cross_encoders[configured] = CrossEncoderReranker(Path(configured))
        return reranker

    def _client(self, caller: Principal, tag: str) -> ModelClient:
        """Model calls as ``caller``, tagged with the operation that makes them."""
        if self.gateway is None:
            return _NO_GATEWAY
        return CallerClient(self.gateway, caller, tag)

    def _embedder_for(self, spec: CollectionSpec, client: ModelClient) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        return GatewayEmbedder(client, spec.embedding_model)


@dataclass(frozen=True, slots=True)
class _Wanted:
    """What one search asks the collection for."""

    top_k: int
    mode: Mode
    where: dict[str, object] | None = None
    diversity: float | None = None


class _NoGateway:
    """The model client of an engine built without a gateway (keyword search only)."""

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        raise _unavailable()

    async def chat_stream(self, request: ChatCompletionRequest) -> ChatStream:
        raise _unavailable()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise _unavailable()


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError("no gateway configured for model calls")


_NO_GATEWAY = _NoGateway()


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
