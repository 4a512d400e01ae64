"""The RAG routes: collections, documents, search and answers under ``/v1/rag``.

Thin: parse and validate the body, call the :class:`~gatehouse.rag.RagEngine`,
shape the response. The engine is built on first use and kept on the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.config import Settings
from gatehouse.core.errors import GatehouseError, ValidationFailedError
from gatehouse.rag import (
    AddDocumentsRequest,
    AnswerEvent,
    AnswerRequest,
    AnswerResponse,
    CollectionInfo,
    CollectionSpec,
    DocumentInfo,
    IngestResult,
    RagEngine,
    SearchRequest,
    SearchResponse,
)
from gatehouse.server.http import SSE_DONE, JSONResponse, parse_body, sse_event, sse_response
from gatehouse.server.routes.table import RouteSpec

TAG = "rag"


def engine(request: Request) -> RagEngine:
    state = request.app.state
    found: RagEngine | None = getattr(state, "rag", None)
    if found is None:
        settings: Settings = state.settings
        found = state.rag = RagEngine(
            settings.data_dir / "rag",
            state.gateway,
            max_document_chars=settings.rag.max_document_chars,
            answer_model=settings.rag.answer_model,
            context_tokens=settings.rag.context_tokens,
            chroma_url=settings.rag.chroma_url,
        )
    return found


async def _authenticated(request: Request) -> None:
    """With authentication on, every RAG route needs a valid credential (401 without)."""
    governance = request.app.state.gateway.governance
    if governance is not None:
        await governance.authenticator.authenticate(request.headers)


def _name(request: Request) -> str:
    name: str = request.path_params["collection"]
    return name


async def create_collection(request: Request) -> Response:
    await _authenticated(request)
    spec = await parse_body(request, CollectionSpec)
    return JSONResponse(engine(request).create_collection(spec), status_code=201)


async def list_collections(request: Request) -> Response:
    await _authenticated(request)
    items = engine(request).collections()
    return JSONResponse({"object": "list", "data": [c.model_dump() for c in items]})


async def get_collection(request: Request) -> Response:
    await _authenticated(request)
    return JSONResponse(engine(request).describe(_name(request)))


async def delete_collection(request: Request) -> Response:
    await _authenticated(request)
    engine(request).delete_collection(_name(request))
    return JSONResponse({"id": _name(request), "deleted": True})


async def add_documents(request: Request) -> Response:
    await _authenticated(request)
    body = await parse_body(request, AddDocumentsRequest)
    result = await engine(request).add_documents(_name(request), body.documents)
    return JSONResponse(result)


async def list_documents(request: Request) -> Response:
    await _authenticated(request)
    try:
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        raise ValidationFailedError("limit must be an integer", param="limit") from None
    if not 1 <= limit <= 1000:
        raise ValidationFailedError("limit must be between 1 and 1000", param="limit")
    after = request.query_params.get("after", "")
    docs = engine(request).documents(_name(request), limit=limit, after=after)
    return JSONResponse(
        {"object": "list", "data": [d.model_dump() for d in docs], "has_more": len(docs) == limit}
    )


async def get_document(request: Request) -> Response:
    await _authenticated(request)
    info, chunks = engine(request).document(_name(request), request.path_params["document"])
    return JSONResponse({**info.model_dump(), "chunk_list": chunks})


async def delete_document(request: Request) -> Response:
    await _authenticated(request)
    name, document_id = _name(request), request.path_params["document"]
    rag = engine(request)
    rag.document(name, document_id)  # 404 when absent
    rag.delete_documents(name, [document_id])
    return JSONResponse({"id": document_id, "deleted": True})


async def search(request: Request) -> Response:
    await _authenticated(request)
    body = await parse_body(request, SearchRequest)
    hits = await engine(request).search(
        _name(request),
        body.query,
        top_k=body.top_k,
        mode=body.mode,
        where=body.filter,
        diversity=body.diversity,
        expansion=body.expansion,
        rerank=body.rerank,
    )
    return JSONResponse(SearchResponse(results=hits))


async def answer(request: Request) -> Response:
    await _authenticated(request)
    body = await parse_body(request, AnswerRequest)
    rag = engine(request)
    if not body.stream:
        return JSONResponse(await rag.answer(_name(request), body))
    events = rag.answer_stream(_name(request), body)
    # Retrieval happens before the first event: its errors still get a real status.
    first = await anext(events)
    return sse_response(_sse(first, events))


async def _sse(first: AnswerEvent, rest: AsyncIterator[AnswerEvent]) -> AsyncIterator[bytes]:
    yield sse_event(first.model_dump(exclude_none=True))
    try:
        async for event in rest:
            yield sse_event(event.model_dump(exclude_none=True))
    except GatehouseError as exc:
        yield sse_event(exc.to_dict())
        return
    yield SSE_DONE


_C = "/v1/rag/collections"
ROUTES = [
    RouteSpec(
        "POST",
        _C,
        create_collection,
        summary="Create a collection",
        request_model=CollectionSpec,
        response_model=CollectionInfo,
        tag=TAG,
    ),
    RouteSpec("GET", _C, list_collections, summary="List collections", tag=TAG),
    RouteSpec(
        "GET",
        _C + "/{collection}",
        get_collection,
        summary="Describe a collection",
        response_model=CollectionInfo,
        tag=TAG,
    ),
    RouteSpec(
        "DELETE", _C + "/{collection}", delete_collection, summary="Delete a collection", tag=TAG
    ),
    RouteSpec(
        "POST",
        _C + "/{collection}/documents",
        add_documents,
        summary="Add or replace documents (unchanged ones are skipped)",
        request_model=AddDocumentsRequest,
        response_model=IngestResult,
        tag=TAG,
    ),
    RouteSpec(
        "GET", _C + "/{collection}/documents", list_documents, summary="List documents", tag=TAG
    ),
    RouteSpec(
        "GET",
        _C + "/{collection}/documents/{document:path}",
        get_document,
        summary="Describe a document and its chunks",
        response_model=DocumentInfo,
        tag=TAG,
    ),
    RouteSpec(
        "DELETE",
        _C + "/{collection}/documents/{document:path}",
        delete_document,
        summary="Delete a document and its chunks",
        tag=TAG,
    ),
    RouteSpec(
        "POST",
        _C + "/{collection}/search",
        search,
        summary="Search a collection (hybrid, dense, keyword or rrf)",
        request_model=SearchRequest,
        response_model=SearchResponse,
        tag=TAG,
    ),
    RouteSpec(
        "POST",
        _C + "/{collection}/answer",
        answer,
        summary="Answer a question from a collection, with citations (SSE when stream=true)",
        request_model=AnswerRequest,
        response_model=AnswerResponse,
        stream_model=AnswerEvent,
        tag=TAG,
    ),
]
