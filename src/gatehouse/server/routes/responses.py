"""The Responses API: ``POST /v1/responses`` and its stored responses.

A request is translated to a chat completion (``gatehouse.faces.responses``)
and runs through the gateway's pipeline like ``/v1/chat/completions``, as its
caller: limits, budgets, the guard and the ledger (tag ``responses``) apply.
Unless ``store`` is false the finished response is stored, owned by the
caller's team (or its key, when the key has no team); another owner gets 404
on it, as on a missing one, including as a ``previous_response_id``. A
stored prompt template named in ``prompt`` (:mod:`gatehouse.prompts.library`)
renders as the caller; its messages come before the turn's ``input``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Literal

from pydantic import TypeAdapter
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.errors import GatehouseError, NotFoundError
from gatehouse.core.principal import Principal
from gatehouse.core.rerank import RerankResponse
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, EmbeddingResponse
from gatehouse.faces import responses as face
from gatehouse.faces import responses_native as native_face
from gatehouse.faces.responses_input import input_item_page, input_items, invalid, unsupported
from gatehouse.faces.responses_items import (
    InputItemList,
    Item,
    ResponseError,
    ResponseObject,
    new_item_id,
)
from gatehouse.faces.responses_native_stream import NativeRelay
from gatehouse.faces.responses_stream import StreamTranslator
from gatehouse.gateway import CallContext, Gateway
from gatehouse.server.http import JSONResponse, parse_body, sse_response
from gatehouse.server.routes.admission import admit_request
from gatehouse.server.routes.prompts import render_reference
from gatehouse.server.routes.table import RouteSpec
from gatehouse.store.responses import (
    MemoryResponseStore,
    ResponseStore,
    SQLResponseStore,
    StoredResponse,
)

LEDGER_TAG = "responses"
_ITEMS = TypeAdapter(list[Item])


def owner_of(principal: Principal) -> str:
    """Who owns what this caller stores: its team, else its key, else itself."""
    if principal.team:
        return f"team:{principal.team}"
    if principal.key_id:
        return f"key:{principal.key_id}"
    return f"principal:{principal.id}"


def response_store(state: State) -> ResponseStore:
    """The app's store of responses: its SQL database, made on first use."""
    store: ResponseStore | None = getattr(state, "response_store", None)
    if store is None:
        governance = state.gateway.governance
        store = (
            MemoryResponseStore() if governance is None else SQLResponseStore(governance.database)
        )
        state.response_store = store
    return store


async def create_response(request: Request) -> Response:
    body = await parse_body(request, face.ResponsesRequest)
    principal: Principal = request.state.principal
    store = response_store(request.app.state)
    owner = owner_of(principal)
    context: list[Item] = []
    if body.previous_response_id is not None:
        previous = await _stored(store, body.previous_response_id, owner, "previous_response_id")
        context = [*_ITEMS.validate_python(previous.input_items), *_response(previous).output]
    # A stored template named in ``prompt`` renders as the caller, before this turn's input.
    prompted: list[Item] = []
    rendered = None
    if body.prompt is not None:  # admitted first, as this request against the rpm
        await admit_request(request.app.state, principal)
        rendered = await render_reference(request.app.state, body.prompt, principal)
        prompted = input_items([{"role": m.role, "content": m.text()} for m in rendered.messages])
        body = body.model_copy(update={"prompt": None})
    items = [*context, *prompted, *input_items(body.input, foreign_reasoning=True)]
    # Deployments that speak Responses get it as it came, with every turn's items;
    # an upstream's own reasoning state goes to those only.
    native_only: list[str] = []
    chat = face.to_openai(body, items, foreign=native_only)
    native = native_face.NativeCall(
        body=native_face.native_body(
            body.model_dump(mode="json", exclude_unset=True, exclude={"prompt"}),
            _ITEMS.dump_python(items, mode="json", exclude_none=True),
        ),
        request=chat,
        native_only=native_only,
    )
    ctx = CallContext(
        request_id=request.state.request_id,
        endpoint="chat",
        request=chat,
        headers=request.headers,
        principal=principal,
        tag=LEDGER_TAG if rendered is None else rendered.tag(LEDGER_TAG),
        native=native,
        requests_admitted=rendered is not None,
    )
    shell = face.shell(body, response_id=new_item_id("resp"), created_at=int(time.time()))
    saver = _Saver(
        store if body.stores else None,
        owner,
        items,
        user=principal.user,
        end_user=body.user or body.safety_identifier,
    )
    gateway: Gateway = request.app.state.gateway
    result = await gateway.handle(ctx)
    if isinstance(result, ChatCompletion):
        upstream = native.answered(result)
        if upstream is not None:
            # Answered natively (and no stage changed the answer): the upstream's own.
            await saver.save(native_face.to_store(upstream, shell))
            return JSONResponse(
                native_face.for_client(upstream, shell), headers=ctx.response_headers
            )
        response = face.from_openai(result, shell)
        await saver.save(response)
        return JSONResponse(response, headers=ctx.response_headers)
    if isinstance(result, EmbeddingResponse | RerankResponse):  # pragma: no cover - a bug
        raise TypeError("chat call produced an embedding response")
    # The first chunk before answering, so that errors found while preparing
    # (a refused parameter, a context too long) get a real HTTP status.
    first = await anext(result)
    if native.streaming:
        events = _native_events(shell, native, first, result, saver)
        return sse_response(events, headers=ctx.response_headers)
    return sse_response(_events(shell, first, result, saver), headers=ctx.response_headers)


class _Saver:
    """Stores a finished response with the input that produced it, if asked to."""

    def __init__(
        self,
        store: ResponseStore | None,
        owner: str,
        items: list[Item],
        *,
        user: str | None,
        end_user: str | None,
    ) -> None:
        self._store = store
        self._owner = owner
        self._items = items
        # Whose data it is, so that per-user export and deletion find it.
        self._user = user
        self._end_user = end_user

    async def save(self, response: ResponseObject) -> None:
        if self._store is None:
            return
        await self._store.put(
            StoredResponse(
                id=response.id,
                owner=self._owner,
                created_at=float(response.created_at),
                model=response.model,
                status=response.status,
                previous_response_id=response.previous_response_id,
                response=response.model_dump(mode="json"),
                input_items=_ITEMS.dump_python(self._items, mode="json"),
                user=self._user,
                end_user=self._end_user,
            )
        )


async def _events(
    shell: ResponseObject,
    first: ChatCompletionChunk,
    rest: AsyncIterator[ChatCompletionChunk],
    saver: _Saver,
) -> AsyncIterator[bytes]:
    translator = StreamTranslator(shell)
    for data in translator.feed(first):
        yield data
    closing: list[bytes] = []
    try:
        async for chunk in rest:
            for data in translator.feed(chunk):
                yield data
        closing = translator.close()
        assert translator.response is not None
        # Stored before the client hears it is done, so it can be chained at once.
        await saver.save(translator.response)
    except GatehouseError as exc:
        # Headers are gone: the failure (the upstream's, or the store's) travels
        # as events, and is stored as one if the store can take it.
        failed = translator.fail(exc)
        assert translator.response is not None
        with contextlib.suppress(GatehouseError):
            await saver.save(translator.response)
        for data in [*closing, *failed]:
            yield data
        return
    for data in [*closing, translator.complete()]:
        yield data


async def _native_events(
    shell: ResponseObject,
    native: native_face.NativeCall,
    first: ChatCompletionChunk,
    rest: AsyncIterator[ChatCompletionChunk],
    saver: _Saver,
) -> AsyncIterator[bytes]:
    """The upstream's own events, with what the pipeline let through of the answer
    (:class:`NativeRelay`); the closing event waits until the response is stored."""
    relay = NativeRelay(native, shell)
    try:
        for data in relay.feed(first):
            yield data
        async for chunk in rest:
            for data in relay.feed(chunk):
                yield data
        closing, final = relay.close()
        await saver.save(native_face.to_store(final, shell))
    except GatehouseError as exc:
        failed = shell.model_copy(
            update={
                "status": "failed",
                "error": ResponseError(code=_failure_code(exc), message=exc.message),
            }
        )
        with contextlib.suppress(GatehouseError):
            await saver.save(failed)
        error = {"code": exc.error_code, "message": exc.message, "param": exc.param}
        for data in relay.fail(error, failed.model_dump(mode="json")):
            yield data
        return
    for data in closing:
        yield data


def _failure_code(exc: GatehouseError) -> str:
    return "rate_limit_exceeded" if exc.http_status == 429 else "server_error"


async def _stored(store: ResponseStore, response_id: str, owner: str, param: str) -> StoredResponse:
    record = await store.get(response_id, owner)
    if record is None:
        raise NotFoundError(f"Response with id '{response_id}' not found.", param=param)
    return record


def _response(record: StoredResponse) -> ResponseObject:
    return ResponseObject.model_validate(record.response)


def _caller(request: Request) -> tuple[ResponseStore, str]:
    principal: Principal = request.state.principal
    return response_store(request.app.state), owner_of(principal)


async def get_response(request: Request) -> Response:
    if request.query_params.get("stream", "false").lower() == "true":
        raise unsupported("stream", "Replaying a stored response as a stream")
    store, owner = _caller(request)
    record = await _stored(store, request.path_params["response_id"], owner, "response_id")
    return JSONResponse(_response(record))


async def delete_response(request: Request) -> Response:
    store, owner = _caller(request)
    response_id = request.path_params["response_id"]
    if not await store.delete(response_id, owner):
        raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
    return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})


async def list_input_items(request: Request) -> Response:
    store, owner = _caller(request)
    record = await _stored(store, request.path_params["response_id"], owner, "response_id")
    query = request.query_params
    if query.getlist("include") or query.getlist("include[]"):
        raise unsupported("include", "include on input_items")
    page = input_item_page(
        _ITEMS.validate_python(record.input_items),
        after=query.get("after"),
        limit=_limit(query.get("limit")),
        order=_order(query.get("order")),
    )
    return JSONResponse(page)


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise invalid("limit", "expected an integer from 1 to 100.")
    return int(value)


def _order(value: str | None) -> Literal["asc", "desc"]:
    if value is None or value == "desc":
        return "desc"
    if value == "asc":
        return "asc"
    raise invalid("order", "expected 'asc' or 'desc'.")


ROUTES = [
    RouteSpec(
        "POST",
        "/v1/responses",
        create_response,
        summary="Create a response (OpenAI Responses API; SSE when stream=true)",
        request_model=face.ResponsesRequest,
        response_model=ResponseObject,
        tag="openai",
        scope="chat",
    ),
    RouteSpec(
        "GET",
        "/v1/responses/{response_id}",
        get_response,
        summary="Get a stored response (the caller's team's only)",
        response_model=ResponseObject,
        tag="openai",
        scope="chat",
    ),
    RouteSpec(
        "DELETE",
        "/v1/responses/{response_id}",
        delete_response,
        summary="Delete a stored response (the caller's team's only)",
        tag="openai",
        scope="chat",
    ),
    RouteSpec(
        "GET",
        "/v1/responses/{response_id}/input_items",
        list_input_items,
        summary="List a stored response's input items, earlier turns included",
        response_model=InputItemList,
        tag="openai",
        scope="chat",
    ),
]
