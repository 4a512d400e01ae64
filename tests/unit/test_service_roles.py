"""Service roles without processes: which routes each role serves, the RAG service's
HTTP model client (on httpx's mock transport), and the gateway's ledger tag header."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gatehouse.core.errors import (
    AuthenticationError,
    BudgetExceededError,
    GatehouseError,
    PermissionDeniedError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatehouse.core.principal import Principal
from gatehouse.core.types import ChatCompletionRequest, ChatMessage, EmbeddingRequest
from gatehouse.gateway.remote import TAG_HEADER, RemoteGateway
from gatehouse.server.roles import serves
from gatehouse.server.routes import admin, health, observability, openai, rag

from .governed import Governed, governed_app

CALLER = Principal(id="k1", kind="key", team="red", credential=SecretStr("gh-secret"))
EMBEDDING = {
    "object": "list",
    "model": "vectors",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}],
    "usage": {"prompt_tokens": 2, "total_tokens": 2},
}
CHAT = ChatCompletionRequest(model="up", messages=[ChatMessage(role="user", content="hi")])


def remote(handler: Callable[[httpx.Request], httpx.Response]) -> RemoteGateway:
    return RemoteGateway("http://gw:8080/v1", timeout=5, transport=httpx.MockTransport(handler))


def error(status: int, type_: str, code: str, message: str) -> httpx.Response:
    body = {"error": {"message": message, "type": type_, "param": "model", "code": code}}
    return httpx.Response(status, json=body)


def test_each_role_serves_its_routes() -> None:
    every = [*openai.ROUTES, *admin.ROUTES, *rag.ROUTES, *health.ROUTES, *observability.ROUTES]
    assert [s for s in every if serves("all", s)] == every
    gateway = {s.path for s in every if serves("gateway", s)}
    assert not any(path.startswith("/v1/rag/") for path in gateway)
    assert {"/v1/chat/completions", "/admin/keys", "/readyz", "/metrics"} <= gateway
    rag_only = {s.path for s in every if serves("rag", s)}
    assert rag_only == {s.path for s in rag.ROUTES} | {"/healthz", "/readyz", "/metrics"}


async def test_calls_carry_the_callers_credential_and_the_tag() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=EMBEDDING)

    gateway = remote(handler)
    response = await gateway.client(CALLER, "rag.search").embed(
        EmbeddingRequest(model="vectors", input=["a"])
    )
    assert response.data[0].embedding == [0.5, 0.5]
    (sent,) = seen
    assert str(sent.url) == "http://gw:8080/v1/embeddings"
    assert sent.headers["authorization"] == "Bearer gh-secret"
    assert sent.headers[TAG_HEADER] == "rag.search"
    assert json.loads(sent.content)["input"] == ["a"]
    anonymous = Principal(id="anonymous", kind="anonymous")
    await gateway.client(anonymous).embed(EmbeddingRequest(model="vectors", input=["a"]))
    assert "authorization" not in seen[1].headers
    assert TAG_HEADER not in seen[1].headers
    assert "gh-secret" not in repr(CALLER)
    await gateway.aclose()


@pytest.mark.parametrize(
    ("answer", "expected", "code"),
    [
        (error(403, "invalid_request_error", "permission_denied", "not vectors"),
         PermissionDeniedError, "permission_denied"),
        (error(429, "insufficient_quota", "budget_exceeded", "over budget"),
         BudgetExceededError, "budget_exceeded"),
        (error(401, "invalid_request_error", "invalid_api_key", "revoked"),
         AuthenticationError, "invalid_api_key"),
        (error(502, "api_error", "upstream_error", "upstream 500"),
         UpstreamError, "upstream_error"),
        (httpx.Response(500, text="not json"), UpstreamError, "upstream_error"),
    ],
)  # fmt: skip
async def test_the_gateways_refusals_are_passed_on(
    answer: httpx.Response, expected: type[GatehouseError], code: str
) -> None:
    gateway = remote(lambda request: answer)
    with pytest.raises(expected) as caught:
        await gateway.client(CALLER, "rag.answer").chat(CHAT)
    assert caught.value.http_status == answer.status_code
    assert caught.value.error_code == code
    if answer.headers.get("content-type") == "application/json":
        assert caught.value.message == answer.json()["error"]["message"]


async def test_a_gateway_that_does_not_answer_is_a_502_or_504_naming_it() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    with pytest.raises(UpstreamConnectionError) as caught:
        await remote(refused).client(CALLER, "rag.search").chat(CHAT)
    assert caught.value.http_status == 502
    assert "http://gw:8080" in caught.value.message
    with pytest.raises(UpstreamTimeoutError):
        await remote(slow).client(CALLER, "rag.search").chat(CHAT)
    with pytest.raises(UpstreamConnectionError):
        await remote(refused).ping()


def sse(*events: object) -> httpx.Response:
    body = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


def chunk(text: str) -> dict[str, object]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


async def texts(stream: AsyncIterator[object]) -> list[str]:
    return [c.choices[0].delta.content async for c in stream]  # type: ignore[attr-defined]


async def test_streams_end_at_done_and_raise_an_error_event() -> None:
    whole = remote(lambda request: sse(chunk("a"), chunk("b"), "[DONE]"))
    stream = await whole.client(CALLER, "rag.answer").chat_stream(CHAT)
    assert await texts(stream) == ["a", "b"]
    failing = {"error": {"message": "budget", "type": "insufficient_quota", "code": "x"}}
    broken = remote(lambda request: sse(chunk("a"), failing))
    stream = await broken.client(CALLER, "rag.answer").chat_stream(CHAT)
    with pytest.raises(BudgetExceededError):
        await texts(stream)
    cut = remote(lambda request: sse(chunk("a")))
    stream = await cut.client(CALLER, "rag.answer").chat_stream(CHAT)
    with pytest.raises(UpstreamError, match="before \\[DONE\\]"):
        await texts(stream)


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path):
        yield governed


async def test_the_gateway_records_a_valid_tag_and_refuses_a_bad_one(gov: Governed) -> None:
    key = await gov.new_key(team="red")
    body = {"model": "test/echo", "messages": [{"role": "user", "content": "hi"}]}

    async def chat(tag: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}", TAG_HEADER: tag}
        return await gov.http.post("/v1/chat/completions", json=body, headers=headers)

    bad = await chat("rag search; drop")
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == TAG_HEADER
    assert (await chat("rag.answer")).status_code == 200
    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/ledger?limit=10")).json()["events"]
    assert [e["tag"] for e in events if e["key_id"] == key[3:19]] == ["rag.answer"]
