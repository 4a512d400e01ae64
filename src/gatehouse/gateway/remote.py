"""The gateway over HTTP, as a model client: what a ``serve --role rag`` process calls.

A RAG service split from the gateway makes the same model calls as the
in-process engine (embeddings, answers, query rewriting, LLM reranking), but
sends them to the gateway's OpenAI-compatible API. Each call carries the
caller's own credential, so the gateway authenticates it again and runs the
call through its whole pipeline as that caller: routing, scopes and allowed
models, limits, budgets, guardrails and metering. There is no service
account: a key that lacks ``embeddings``, names a model it may not use or has
spent its budget gets the gateway's refusal, passed on with its status, type
and code. The operation's tag (``rag.search``, ...) goes in
:data:`TAG_HEADER`, so the gateway's ledger records it as the in-process call
would.

A gateway that cannot be reached is a 502 (``upstream_unreachable``), one that
does not answer in time a 504; either names the gateway's address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from gatehouse.core.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConflictError,
    GatehouseError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatehouse.core.principal import Principal
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from gatehouse.gateway.pipeline import ChatStream

M = TypeVar("M", bound=BaseModel)

TAG_HEADER = "x-gatehouse-tag"
CONNECT_TIMEOUT = 5.0


class RemoteGateway:
    """A gatehouse gateway at ``base_url``, reached over one pool of connections.

    ``timeout`` bounds each call (a streamed answer: each read); ``transport``
    replaces the network (tests)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # The OpenAI base URL (…/v1) and the server's root are both accepted.
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
            transport=transport,
        )

    def client(self, caller: Principal, tag: str | None = None) -> RemoteClient:
        """Model calls as ``caller``, presenting its credential, tagged ``tag``."""
        headers = {"accept": "application/json", "user-agent": "gatehouse-rag"}
        if caller.credential is not None:
            headers["authorization"] = f"Bearer {caller.credential.get_secret_value()}"
        if tag is not None:
            headers[TAG_HEADER] = tag
        return RemoteClient(self, headers)

    async def ping(self) -> str:
        """The gateway's liveness probe, for readiness; raises when it does not
        answer 200. Its words name no address (readiness details are public)."""
        try:
            response = await self._http.get("/healthz")
        except httpx.HTTPError as exc:
            raise UpstreamConnectionError(
                f"the gateway does not answer ({type(exc).__name__})"
            ) from exc
        if response.status_code != 200:
            raise UpstreamError(f"the gateway's /healthz answered {response.status_code}")
        return "the gateway answers"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def post(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str], *, stream: bool = False
    ) -> httpx.Response:
        """POST ``body``; a response with a 2xx status (its body unread when
        ``stream``), or the gateway's refusal raised as the matching error."""
        request = self._http.build_request(
            "POST",
            path,
            content=orjson.dumps(body),
            headers={**headers, "content-type": "application/json"},
        )
        try:
            response = await self._http.send(request, stream=stream)
            if response.status_code >= 400:
                content = await response.aread()
                await response.aclose()
                raise gateway_error(response.status_code, content, response.headers)
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from exc
        return response

    def unreachable(self, exc: httpx.HTTPError) -> GatehouseError:
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamTimeoutError(f"The gateway at {self.base_url} did not answer in time.")
        reason = str(exc) or type(exc).__name__
        return UpstreamConnectionError(
            f"The gateway at {self.base_url} is unreachable ({reason}): "
            "the RAG service cannot make model calls."
        )


@dataclass(frozen=True, slots=True)
class RemoteClient:
    """A :class:`~gatehouse.gateway.ModelClient` whose calls go to a remote gateway
    with ``headers`` (the caller's credential and the operation's tag)."""

    gateway: RemoteGateway
    headers: Mapping[str, str]

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        body = _dump(request)
        body["stream"] = False
        body.pop("stream_options", None)
        response = await self.gateway.post("/v1/chat/completions", body, self.headers)
        return _parse(ChatCompletion, response.content, self.gateway.base_url)

    async def chat_stream(self, request: ChatCompletionRequest) -> ChatStream:
        body = _dump(request)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        headers = {**self.headers, "accept": "text/event-stream"}
        response = await self.gateway.post("/v1/chat/completions", body, headers, stream=True)
        return _chunks(self.gateway, response)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        body = _dump(request)
        body["encoding_format"] = "float"
        response = await self.gateway.post("/v1/embeddings", body, self.headers)
        return _parse(EmbeddingResponse, response.content, self.gateway.base_url)


async def _chunks(
    gateway: RemoteGateway, response: httpx.Response
) -> AsyncIterator[ChatCompletionChunk]:
    """The chunks of a streamed answer; an error event raises the error it names."""
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments (keep-alives), other fields
            data = line[5:].strip()
            if data == "[DONE]":
                return
            yield _chunk(data, gateway.base_url)
    except httpx.HTTPError as exc:
        raise gateway.unreachable(exc) from exc
    finally:
        await response.aclose()
    raise UpstreamError(f"The gateway at {gateway.base_url} ended the stream before [DONE].")


def _chunk(data: str, where: str) -> ChatCompletionChunk:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"The gateway at {where} sent a malformed stream event.") from None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        raise _from_body(502, payload["error"], {})
    return _parse(ChatCompletionChunk, payload, where)


def _dump(request: BaseModel) -> dict[str, Any]:
    return request.model_dump(mode="json", exclude_none=True)


def _parse(cls: type[M], data: bytes | object, where: str) -> M:
    try:
        if isinstance(data, bytes):
            return cls.model_validate_json(data)
        return cls.model_validate(data)
    except ValidationError:
        raise UpstreamError(
            f"The gateway at {where} answered with a malformed {cls.__name__}."
        ) from None


def gateway_error(status: int, content: bytes, headers: Mapping[str, str]) -> GatehouseError:
    """The gateway's error answer as the same error here: status, type, code,
    param and message kept, so the caller sees what the gateway decided."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        error = {"message": f"The gateway answered {status} without an error body."}
    return _from_body(status, error, headers)


_BY_STATUS: dict[int, type[GatehouseError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    429: RateLimitError,
    502: UpstreamError,
    503: ServiceUnavailableError,
    504: UpstreamTimeoutError,
}


def _from_body(status: int, error: Mapping[str, Any], headers: Mapping[str, str]) -> GatehouseError:
    message = str(error.get("message") or f"The gateway answered {status}.")
    code = error.get("code") if isinstance(error.get("code"), str) else None
    param = error.get("param") if isinstance(error.get("param"), str) else None
    if error.get("type") == BudgetExceededError.type:
        cls: type[GatehouseError] = BudgetExceededError
    elif status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif 400 <= status < 500:
        cls = InvalidRequestError
    else:
        cls = UpstreamError
    if cls is AuthenticationError:
        return AuthenticationError(message)
    retry_after = headers.get("retry-after")
    return cls(
        message,
        code=code,
        param=param,
        status=status,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
    )
