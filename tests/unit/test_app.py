"""The HTTP layer with fake providers, driven through the official openai SDK in-process."""

from __future__ import annotations

import errno
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from gatehouse.core.config import Settings
from gatehouse.core.errors import ServiceUnavailableError
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.gateway.cache import ExactCache, MemoryStore
from gatehouse.server import create_app

from .fakes import ConstantEmbeddings, EchoChat


@pytest.fixture
def chat() -> EchoChat:
    return EchoChat()


@pytest.fixture
def app(tmp_path: Path, chat: EchoChat) -> object:
    settings = Settings(data_dir=tmp_path, server={"max_body_bytes": 4096})
    registry = ModelRegistry([chat, ConstantEmbeddings()], {"default": "test/echo"})
    return create_app(settings, gateway=Gateway(registry, started_at=0))


@pytest.fixture
async def http(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as client:
        yield client


@pytest.fixture
def sdk(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="unused", base_url="http://gatehouse/v1", http_client=http, max_retries=0
    )


async def test_chat_round_trip_through_the_sdk(sdk: openai.AsyncOpenAI) -> None:
    reply = await sdk.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "hello there"}]
    )
    assert reply.choices[0].message.content == "hello there"
    assert reply.usage is not None
    assert reply.usage.total_tokens == 2


async def test_stream_is_sse_ending_with_done(http: httpx.AsyncClient) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": "a b"}], "stream": True}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all(event.startswith("data: ") for event in events)


async def test_mid_stream_failure_ends_with_an_error_event(
    sdk: openai.AsyncOpenAI, chat: EchoChat
) -> None:
    chat.fail_mid_stream = ServiceUnavailableError("upstream went away")
    stream = await sdk.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    with pytest.raises(openai.APIError, match="upstream went away"):
        async for _ in stream:
            pass


async def test_every_response_carries_a_request_id(http: httpx.AsyncClient) -> None:
    for response in [
        await http.get("/healthz"),
        await http.get("/v1/models"),
        await http.get("/no/such/route"),
        await http.post("/v1/chat/completions", content=b"{"),
    ]:
        assert response.headers["x-request-id"].startswith("req-")
    echoed = await http.get("/healthz", headers={"x-request-id": "client-id-1"})
    assert echoed.headers["x-request-id"] == "client-id-1"


async def test_unexpected_failure_is_a_500_with_request_id_and_no_trace(
    sdk: openai.AsyncOpenAI, chat: EchoChat
) -> None:
    chat.fail_with = RuntimeError("secret internal detail")
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}]
        )
    error = caught.value
    assert error.status_code == 500
    assert error.code == "internal_error"
    request_id = error.response.headers["x-request-id"]
    assert request_id in error.message
    assert "secret" not in error.response.text
    assert "Traceback" not in error.response.text


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionRefusedError(111, "refused"),
        sqlite3.OperationalError("database or disk is full"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["database unreachable", "outbox disk full", "disk full"],
)
async def test_a_dependency_down_is_a_retryable_503_not_a_500(
    sdk: openai.AsyncOpenAI, chat: EchoChat, failure: Exception
) -> None:
    chat.fail_with = failure
    with pytest.raises(openai.APIStatusError) as caught:
        await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 503
    assert caught.value.response.headers["x-request-id"] in caught.value.message
    assert "disk" not in caught.value.message


async def test_a_missing_file_is_still_a_500(sdk: openai.AsyncOpenAI, chat: EchoChat) -> None:
    chat.fail_with = FileNotFoundError(errno.ENOENT, "no such file")
    with pytest.raises(openai.InternalServerError):
        await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}]
        )


async def test_malformed_json_is_400_invalid_json(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions", content=b'{"model": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_schema_violation_names_the_field(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}], temperature=5
        )
    assert caught.value.param == "temperature"  # type: ignore[attr-defined]
    assert "temperature" in caught.value.message


async def test_unknown_model_is_404_model_not_found(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_found"


async def test_wrong_model_kind_is_400(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="embedding model"):
        await sdk.chat.completions.create(
            model="test/embed", messages=[{"role": "user", "content": "x"}]
        )


async def test_oversized_body_is_413(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x" * 10_000}]
        )
    assert caught.value.status_code == 413
    assert caught.value.code == "request_too_large"  # type: ignore[attr-defined]


async def test_oversized_chunked_body_is_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = await http.post(
        "/v1/embeddings", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_the_anthropic_routes_answer_this_layer_s_errors_in_their_shape(
    http: httpx.AsyncClient, chat: EchoChat, path: str
) -> None:
    body = {"model": "default", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    # Refused before the route runs: a body or headers over the limits.
    too_large = await http.post(path, json={**body, "system": "x" * 10_000})
    headers_too_large = await http.post(path, json=body, headers={"x-pad": "x" * 40_000})
    for response, status, kind in (
        (too_large, 413, "request_too_large"),
        (headers_too_large, 431, "invalid_request_error"),
    ):
        assert response.status_code == status
        assert response.json()["type"] == "error"
        assert response.json()["error"]["type"] == kind
    # An unexpected failure inside the route: a 500 in the same shape.
    if path == "/v1/messages":
        chat.fail_with = RuntimeError("secret internal detail")
        failed = await http.post(path, json=body)
        assert failed.status_code == 500
        assert failed.json()["error"]["type"] == "api_error"
        assert failed.headers["x-request-id"] in failed.json()["error"]["message"]
        assert "secret" not in failed.text


async def test_wrong_media_type_is_415(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await sdk.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"content-type": "text/plain"},
        )
    assert caught.value.status_code == 415
    assert caught.value.code == "unsupported_media_type"  # type: ignore[attr-defined]


async def test_unknown_route_and_method_are_openai_shaped(http: httpx.AsyncClient) -> None:
    missing = await http.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = await http.get("/v1/chat/completions")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


async def test_models_list_and_get(sdk: openai.AsyncOpenAI) -> None:
    ids = [model.id async for model in sdk.models.list()]
    assert ids == ["test/echo", "test/embed", "default"]
    assert (await sdk.models.retrieve("test/echo")).id == "test/echo"
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("absent")


async def test_embeddings_through_the_sdk(sdk: openai.AsyncOpenAI) -> None:
    result = await sdk.embeddings.create(model="test/embed", input=["a", "b"])
    assert [item.embedding for item in result.data] == [[1.0, 0.0], [1.0, 0.0]]


async def test_probes(http: httpx.AsyncClient, tmp_path: Path) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    tmp_path.rmdir()
    not_ready = await http.get("/readyz")
    assert not_ready.status_code == 503
    assert any(not check["ok"] for check in not_ready.json()["checks"])


async def test_every_route_is_in_the_openapi_schema(http: httpx.AsyncClient, app: object) -> None:
    schema = (await http.get("/openapi.json")).json()
    documented = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    served = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in app.routes  # type: ignore[attr-defined]
        for method in route.methods - {"HEAD"}
    }
    assert served == documented
    chat_body = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert chat_body["content"]["application/json"]["schema"]["$ref"].endswith(
        "ChatCompletionRequest"
    )


async def test_cache_header_and_bad_cache_field(tmp_path: Path, chat: EchoChat) -> None:
    registry = ModelRegistry([chat], {"default": "test/echo"})
    cached = Gateway(registry, started_at=0, stages=[ExactCache(MemoryStore(), ttl=60)])
    app = create_app(Settings(data_dir=tmp_path), gateway=cached)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as http:
        await _check_cache_header_and_bad_cache_field(http)


async def _check_cache_header_and_bad_cache_field(http: httpx.AsyncClient) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": "x"}], "temperature": 0}
    first = await http.post("/v1/chat/completions", json=body)
    second = await http.post("/v1/chat/completions", json=body)
    assert (first.headers["x-gatehouse-cache"], second.headers["x-gatehouse-cache"]) == (
        "miss",
        "hit",
    )
    bad = await http.post("/v1/chat/completions", json={**body, "cache": {"ttl": -1}})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "cache.ttl"
    unknown = await http.post("/v1/chat/completions", json={**body, "cache": {"tll": 5}})
    assert unknown.status_code == 400
