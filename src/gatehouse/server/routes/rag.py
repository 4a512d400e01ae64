"""The RAG routes: collections, documents, search and answers under ``/v1/rag``.

Thin: parse and validate the body, call the :class:`~gatehouse.rag.RagEngine`
as the caller, shape the response. Each route declares ``rag:read`` or
``rag:write``, which the route table checks; which collections the caller
may touch, and the model calls made on its behalf, are the engine's business.
The engine is built on first use and kept on the app.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.config import Settings
from gatehouse.core.errors import ValidationFailedError
from gatehouse.core.extras import require_extra
from gatehouse.core.principal import Principal
from gatehouse.gateway.auth import bearer
from gatehouse.rag import (
    AddDocumentsRequest,
    AnswerEvent,
    AnswerRequest,
    AnswerResponse,
    CollectionCreate,
    CollectionInfo,
    CollectionSpec,
    DocumentInfo,
    IngestResult,
    RagEngine,
    SearchRequest,
    SearchResponse,
    vector_backend,
)
from gatehouse.server.http import JSONResponse, parse_body, sse_response, sse_stream
from gatehouse.server.routes.admission import admit_request
from gatehouse.server.routes.table import Endpoint, RouteSpec

TAG = "rag"


def engine(request: Request) -> RagEngine:
    state = request.app.state
    found: RagEngine | None = getattr(state, "rag", None)
    if found is None:
        require_extra("rag", "RAG")  # a 503 naming the extra, on a gateway-only install
        settings: Settings = state.settings
        remote = getattr(state, "remote_gateway", None)  # role rag: models over HTTP
        found = state.rag = RagEngine(
            settings.data_dir / "rag",
            remote if remote is not None else state.gateway,
            max_document_chars=settings.rag.max_document_chars,
            answer_model=settings.rag.answer_model,
            context_tokens=settings.rag.context_tokens,
            vector_backend=vector_backend(settings.rag),
            observer=state.metrics.rag,
        )
    return found


def _caller(request: Request) -> Principal:
    """The caller, with the credential it presented: a RAG service split from the
    gateway presents it again for the model calls it makes on the caller's behalf."""
    principal: Principal = request.state.principal
    token = bearer(request.headers)
    if token is None:
        return principal
    return dataclasses.replace(principal, credential=SecretStr(token))


def _name(request: Request) -> str:
    name: str = request.path_params["collection"]
    return name


async def create_collection(request: Request) -> Response:
    body = await parse_body(request, CollectionCreate)
    spec = CollectionSpec.model_validate(body.model_dump(exclude={"owner"}))
    info = engine(request).create_collection(spec, caller=_caller(request), owner=body.owner)
    return JSONResponse(info, status_code=201)


async def list_collections(request: Request) -> Response:
    items = engine(request).collections(caller=_caller(request))
    return JSONResponse({"object": "list", "data": [c.model_dump() for c in items]})


async def get_collection(request: Request) -> Response:
    return JSONResponse(engine(request).describe(_name(request), caller=_caller(request)))


async def delete_collection(request: Request) -> Response:
    engine(request).delete_collection(_name(request), caller=_caller(request))
    return JSONResponse({"id": _name(request), "deleted": True})


async def add_documents(request: Request) -> Response:
    body = await parse_body(request, AddDocumentsRequest)
    result = await engine(request).add_documents(
        _name(request), body.documents, caller=_caller(request)
    )
    return JSONResponse(result)


async def list_documents(request: Request) -> Response:
    try:
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        raise ValidationFailedError("limit must be an integer", param="limit") from None
    if not 1 <= limit <= 1000:
        raise ValidationFailedError("limit must be between 1 and 1000", param="limit")
    after = request.query_params.get("after", "")
    docs = engine(request).documents(
        _name(request), limit=limit, after=after, caller=_caller(request)
    )
    return JSONResponse(
        {"object": "list", "data": [d.model_dump() for d in docs], "has_more": len(docs) == limit}
    )


async def get_document(request: Request) -> Response:
    info, chunks = engine(request).document(
        _name(request), request.path_params["document"], caller=_caller(request)
    )
    return JSONResponse({**info.model_dump(), "chunk_list": chunks})


async def delete_document(request: Request) -> Response:
    name, document_id = _name(request), request.path_params["document"]
    rag, caller = engine(request), _caller(request)
    rag.document(name, document_id, caller=caller)  # 404 when absent
    rag.delete_documents(name, [document_id], caller=caller)
    return JSONResponse({"id": document_id, "deleted": True})


async def search(request: Request) -> Response:
    body = await parse_body(request, SearchRequest)
    headers: dict[str, str] = {}
    if not body.calls_models:
        # Nothing else would count it: a search with no model call is one request
        # against the caller's requests-per-minute limits, as counting tokens is.
        # One that calls models is counted by those calls, not twice.
        headers = await admit_request(request.app.state, request.state.principal)
    hits = await engine(request).search(
        _name(request),
        body.query,
        top_k=body.top_k,
        mode=body.mode,
        where=body.filter,
        diversity=body.diversity,
        expansion=body.expansion,
        rerank=body.rerank,
        caller=_caller(request),
    )
    return JSONResponse(SearchResponse(results=hits), headers=headers)


async def answer(request: Request) -> Response:
    body = await parse_body(request, AnswerRequest)
    rag, caller = engine(request), _caller(request)
    if not body.stream:
        return JSONResponse(await rag.answer(_name(request), body, caller=caller))
    events = rag.answer_stream(_name(request), body, caller=caller)
    # Retrieval happens before the first event: its errors still get a real status.
    first = await anext(events)
    return sse_response(sse_stream(first, events, exclude_none=True))


def _read(method: str, path: str, endpoint: Endpoint, summary: str, **extra: Any) -> RouteSpec:
    return RouteSpec(method, _C + path, endpoint, summary, tag=TAG, scope="rag:read", **extra)


def _write(method: str, path: str, endpoint: Endpoint, summary: str, **extra: Any) -> RouteSpec:
    return RouteSpec(method, _C + path, endpoint, summary, tag=TAG, scope="rag:write", **extra)


_C = "/v1/rag/collections"
_DOC = "/{collection}/documents/{document:path}"
ROUTES = [
    _write(
        "POST",
        "",
        create_collection,
        "Create a collection, owned by the caller's team (or key, or organisation)",
        request_model=CollectionCreate,
        response_model=CollectionInfo,
    ),
    _read("GET", "", list_collections, "List the collections the caller may access"),
    _read(
        "GET",
        "/{collection}",
        get_collection,
        "Describe a collection",
        response_model=CollectionInfo,
    ),
    _write("DELETE", "/{collection}", delete_collection, "Delete a collection"),
    _write(
        "POST",
        "/{collection}/documents",
        add_documents,
        "Add or replace documents (unchanged ones are skipped)",
        request_model=AddDocumentsRequest,
        response_model=IngestResult,
    ),
    _read("GET", "/{collection}/documents", list_documents, "List documents"),
    _read(
        "GET", _DOC, get_document, "Describe a document and its chunks", response_model=DocumentInfo
    ),
    _write("DELETE", _DOC, delete_document, "Delete a document and its chunks"),
    _read(
        "POST",
        "/{collection}/search",
        search,
        "Search a collection (hybrid, dense, keyword or rrf)",
        request_model=SearchRequest,
        response_model=SearchResponse,
    ),
    _read(
        "POST",
        "/{collection}/answer",
        answer,
        "Answer a question from a collection, with citations (SSE when stream=true)",
        request_model=AnswerRequest,
        response_model=AnswerResponse,
        stream_model=AnswerEvent,
    ),
]
