"""The raw ASGI hot routes: same behaviour as any route, and streams stop when the client goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatehouse.core.config import Settings
from gatehouse.core.types import ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Delta
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.server import create_app

from .fakes import ConstantEmbeddings, EchoChat


class EndlessChat(EchoChat):
    """Streams one chunk, then waits forever; records that it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = asyncio.Event()

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        try:
            yield ChatCompletionChunk(
                id="c", created=0, model="m", choices=[ChunkChoice(delta=Delta(content="x"))]
            )
            await asyncio.Event().wait()
        finally:
            self.closed.set()


@pytest.fixture
def chat() -> EndlessChat:
    return EndlessChat()


@pytest.fixture
def app(tmp_path: Path, chat: EndlessChat) -> Any:
    registry = ModelRegistry([chat, ConstantEmbeddings()], {"default": "test/echo"})
    return create_app(Settings(data_dir=tmp_path), gateway=Gateway(registry, started_at=0))


async def test_a_stream_stops_when_the_client_disconnects(app: Any, chat: EndlessChat) -> None:
    body = b'{"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    first_sent = asyncio.Event()
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await first_sent.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            first_sent.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    assert chat.closed.is_set()
    assert sent[0]["status"] == 200
    assert b"data: " in sent[1]["body"]


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as client:
        yield client


async def test_hot_routes_keep_the_error_contract(http: httpx.AsyncClient) -> None:
    wrong_type = await http.post(
        "/v1/chat/completions", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert wrong_type.json()["error"]["code"] == "unsupported_media_type"
    assert "x-request-id" in wrong_type.headers
    not_json = await http.post(
        "/v1/embeddings", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == "invalid_json"
    wrong_method = await http.get("/v1/chat/completions")
    assert wrong_method.status_code == 405


async def test_embeddings_on_the_hot_path(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/embeddings", json={"model": "test/embed", "input": ["a", "b"]})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(response.content))
    assert [item["index"] for item in response.json()["data"]] == [0, 1]
