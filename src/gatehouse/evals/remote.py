"""A gatehouse server as the evaluator's gateway, over HTTP with the caller's key.

Chat calls (``/v1/chat/completions``) for the judge and capability tests, and
grounded answers (``/v1/rag/collections/{name}/answer``) for ``eval answers``.
The server meters and budgets them as whoever owns the key. Error bodies are
OpenAI-shaped; they come back as the matching :class:`GatehouseError`, chosen
by status and the body's ``code``.

This uses httpx directly; it can move to ``gatehouse.Client`` once that exists.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from gatehouse.core.errors import (
    AuthenticationError,
    BudgetExceededError,
    GatehouseError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatehouse.core.types import ChatCompletion, ChatCompletionRequest
from gatehouse.rag.models import AnswerRequest, AnswerResponse

_BY_STATUS: dict[int, type[GatehouseError]] = {
    400: InvalidRequestError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


class RemoteGateway:
    """Calls to the gatehouse server at ``base_url`` made with ``api_key``."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 300.0) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        body = request.model_dump(exclude_none=True) | {"stream": False}
        return ChatCompletion.model_validate(await self._post("/v1/chat/completions", body))

    async def answer(self, collection: str, request: AnswerRequest) -> AnswerResponse:
        path = f"/v1/rag/collections/{quote(collection, safe='')}/answer"
        body = request.model_dump(exclude_none=True) | {"stream": False}
        return AnswerResponse.model_validate(await self._post(path, body))

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            reply = await self._http.post(path, content=orjson.dumps(body))
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(f"{self._http.base_url}{path}: timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamConnectionError(f"{self._http.base_url}{path}: {exc}") from exc
        if reply.status_code >= 400:
            raise error_from_reply(reply.status_code, reply.content, reply.headers)
        try:
            return orjson.loads(reply.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"{path}: the server answered with something other than JSON"
            ) from exc


def error_from_reply(
    status: int, body: bytes, headers: httpx.Headers | dict[str, str]
) -> GatehouseError:
    """The error an OpenAI-shaped error reply stands for, by status and ``code``."""
    message, code = f"HTTP {status}", None
    try:
        error = orjson.loads(body).get("error", {})
        message = str(error.get("message") or message)
        code = error.get("code")
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if status == 429 and code in ("budget_exceeded", "insufficient_quota"):
        return BudgetExceededError(message, code=code)
    if status == 401:
        return AuthenticationError(message)
    cls = _BY_STATUS.get(status, UpstreamError)
    retry_after = headers.get("retry-after")
    try:
        wait = float(retry_after) if retry_after else None
    except ValueError:
        wait = None
    return cls(
        message, code=code if isinstance(code, str) else None, status=status, retry_after=wait
    )
