"""gatehouse.Client and AsyncClient: retries, errors, streams, in-process use."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatehouse.client import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    Client,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    StreamError,
    retry_after,
)
from gatehouse.client._protocol import SSEDecoder
from gatehouse.core.config import Settings
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.server import create_app

from .fakes import ConstantEmbeddings, EchoChat

NOW = 1_800_000_000.0

COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def error(status: int, code: str, type: str = "invalid_request_error", **headers: str) -> Any:
    body = {"error": {"message": f"failed {code}", "type": type, "param": None, "code": code}}
    return httpx.Response(status, json=body, headers={"x-request-id": "req-1", **headers})


class Script:
    """A MockTransport handler answering from a list, recording each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def policy(**fields: Any) -> RetryPolicy:
    return RetryPolicy(rand=lambda: 1.0, clock=lambda: NOW, **fields)


def client(script: Script, slept: list[float], **fields: Any) -> Client:
    return Client(
        "http://gh.test/v1",
        api_key="gh-secret",
        transport=httpx.MockTransport(script),
        retry=policy(**fields),
        sleep=slept.append,
    )


def test_a_call_sends_the_key_and_returns_a_typed_result() -> None:
    script, slept = Script(httpx.Response(200, json=COMPLETION)), []
    reply = client(script, slept).chat("hello", model="m", temperature=0)
    assert reply.choices[0].message.content == "hi"
    sent = script.requests[0]
    assert sent.url == "http://gh.test/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer gh-secret"
    body = json.loads(sent.content)
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["temperature"] == 0
    assert body["stream"] is False
    assert slept == []


def test_5xx_and_429_are_retried_with_exponential_full_jitter() -> None:
    script = Script(
        error(503, "service_unavailable", "server_error"),
        error(429, "rate_limit_exceeded", "rate_limit_error"),
        httpx.Response(200, json=COMPLETION),
    )
    slept: list[float] = []
    client(script, slept, base_delay=0.5, max_attempts=3).chat("x", model="m")
    # rand() is 1.0: the full ceilings, 0.5 then 1.0.
    assert slept == [0.5, 1.0]
    assert len(script.requests) == 3


def test_the_jitter_is_a_draw_below_the_ceiling() -> None:
    draws = iter([0.25, 0.0])
    retry = RetryPolicy(base_delay=2.0, max_delay=3.0, rand=lambda: next(draws))
    assert retry.backoff(1) == 0.5  # 0.25 * 2
    assert retry.backoff(5) == 0.0  # capped at 3, drawn 0


def test_retry_after_seconds_is_waited_exactly() -> None:
    script = Script(
        error(429, "rate_limit_exceeded", "rate_limit_error", **{"retry-after": "7"}),
        httpx.Response(200, json=COMPLETION),
    )
    slept: list[float] = []
    client(script, slept).chat("x", model="m")
    assert slept == [7.0]


def test_retry_after_http_date_is_measured_from_the_clock() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 12, UTC), usegmt=True)
    script = Script(
        error(503, "admission_timeout", "server_error", **{"retry-after": when}),
        httpx.Response(200, json=COMPLETION),
    )
    slept: list[float] = []
    client(script, slept).chat("x", model="m")
    assert slept == [12.0]


def test_retry_after_parsing() -> None:
    assert retry_after({"retry-after": "1.5"}, now=NOW) == 1.5
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}, now=NOW) == 0.25
    past = format_datetime(datetime.fromtimestamp(NOW - 60, UTC), usegmt=True)
    assert retry_after({"retry-after": past}, now=NOW) == 0.0
    assert retry_after({"retry-after": "soon"}, now=NOW) is None
    assert retry_after({"retry-after": "-3"}, now=NOW) is None
    assert retry_after({}, now=NOW) is None


def test_a_retry_after_longer_than_allowed_is_raised_not_waited() -> None:
    script = Script(error(429, "rate_limit_exceeded", "rate_limit_error", **{"retry-after": "600"}))
    slept: list[float] = []
    with pytest.raises(RateLimitError) as caught:
        client(script, slept, max_retry_after=30).chat("x", model="m")
    assert slept == []
    assert caught.value.retry_after == 600
    assert caught.value.request_id == "req-1"


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    script = Script(*(error(502, "upstream_error", "api_error") for _ in range(3)))
    slept: list[float] = []
    with pytest.raises(InternalServerError) as caught:
        client(script, slept, max_attempts=3).chat("x", model="m")
    assert len(script.requests) == 3
    assert len(slept) == 2
    assert caught.value.status == 502
    assert caught.value.code == "upstream_error"
    assert caught.value.type == "api_error"


def test_an_exhausted_budget_is_not_retried() -> None:
    script = Script(error(429, "budget_exceeded", "insufficient_quota"))
    with pytest.raises(BudgetExceededError):
        client(script, []).chat("x", model="m")
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_value", BadRequestError),
        (401, "invalid_api_key", AuthenticationError),
        (403, "permission_denied", PermissionDeniedError),
        (404, "model_not_found", NotFoundError),
        (422, "unprocessable", BadRequestError),
    ],
)
def test_4xx_are_typed_and_not_retried(status: int, code: str, cls: type[Exception]) -> None:
    script = Script(error(status, code))
    with pytest.raises(cls) as caught:
        client(script, []).chat("x", model="m")
    assert len(script.requests) == 1
    assert getattr(caught.value, "code") == code  # noqa: B009
    assert getattr(caught.value, "request_id") == "req-1"  # noqa: B009


def test_connection_errors_are_retried_read_timeouts_are_not() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json=COMPLETION))
    slept: list[float] = []
    client(script, slept).chat("x", model="m")
    assert len(slept) == 1
    script = Script(httpx.ReadTimeout("slow"))
    with pytest.raises(APITimeoutError):
        client(script, []).chat("x", model="m")
    assert len(script.requests) == 1
    script = Script(*(httpx.ConnectError("refused") for _ in range(2)))
    with pytest.raises(APIConnectionError):
        client(script, [], max_attempts=2).chat("x", model="m")


def test_a_non_json_error_body_still_makes_a_typed_error() -> None:
    script = Script(httpx.Response(400, text="bad gateway config"))
    with pytest.raises(BadRequestError) as caught:
        client(script, []).chat("x", model="m")
    assert caught.value.message == "bad gateway config"
    assert caught.value.code is None


def sse(*events: str) -> httpx.Response:
    text = "".join(f"data: {e}\n\n" for e in events)
    return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


def chunk(content: str | None, usage: bool = False) -> str:
    body: dict[str, Any] = {
        "id": "s",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [] if content is None else [{"index": 0, "delta": {"content": content}}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    return json.dumps(body)


def test_a_stream_yields_typed_chunks_and_its_usage() -> None:
    script = Script(sse(chunk("he"), chunk("llo"), chunk(None, usage=True), "[DONE]"))
    stream = client(script, []).stream("x", model="m")
    assert stream.text() == "hello"
    assert stream.usage is not None
    assert stream.usage.total_tokens == 4
    body = json.loads(script.requests[0].content)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_a_stream_error_event_and_a_cut_stream_raise() -> None:
    failed = json.dumps({"error": {"message": "upstream died", "type": "api_error", "code": "x"}})
    stream = client(Script(sse(chunk("a"), failed)), []).stream("x", model="m")
    with pytest.raises(StreamError) as caught:
        list(stream)
    assert caught.value.code == "x"
    stream = client(Script(sse(chunk("a"))), []).stream("x", model="m")
    with pytest.raises(APIConnectionError, match="DONE"):
        list(stream)


def test_a_stream_refused_before_it_starts_is_retried_then_typed() -> None:
    script = Script(error(503, "service_unavailable", "server_error"), error(403, "denied"))
    with pytest.raises(PermissionDeniedError):
        client(script, []).stream("x", model="m")
    assert len(script.requests) == 2


def test_sse_decoder_joins_data_lines_and_skips_comments() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(": keep-alive") is None
    assert decoder.feed("event: message") is None
    first, second = chunk("a")[:20], chunk("a")[20:]
    assert decoder.feed(f"data: {first}") is None
    assert decoder.feed(f"data: {second}") is None
    parsed = decoder.feed("")
    assert parsed is not None
    assert parsed.choices[0].delta.content == "a"
    decoder.feed("data: [DONE]")
    decoder.finish()  # [DONE] was seen: no error
    assert decoder.done


def test_rag_calls_build_the_documented_requests() -> None:
    hit = {"document_id": "d", "chunk_id": "d#0", "text": "t", "score": 0.5, "metadata": {}}
    script = Script(
        httpx.Response(200, json={"added": 1, "unchanged": 0, "replaced": 0, "chunks": 1}),
        httpx.Response(200, json={"results": [hit]}),
        httpx.Response(200, json={"object": "list", "data": []}),
    )
    gh = client(script, [])
    assert gh.ingest("my docs", ["some text", {"id": "b", "text": "more"}]).added == 1
    hits = gh.search("my docs", "what", top_k=3, mode="keyword")
    assert hits[0].chunk_id == "d#0"
    assert gh.collections() == []
    ingest, search, _ = script.requests
    assert ingest.url.raw_path == b"/v1/rag/collections/my%20docs/documents"
    assert json.loads(ingest.content) == {
        "documents": [{"text": "some text"}, {"id": "b", "text": "more"}]
    }
    assert json.loads(search.content) == {"top_k": 3, "mode": "keyword", "query": "what"}


async def test_the_async_client_retries_with_the_same_decisions() -> None:
    script = Script(
        error(429, "rate_limit_exceeded", "rate_limit_error", **{"retry-after": "2"}),
        httpx.Response(200, json=COMPLETION),
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with AsyncClient(
        "http://gh.test", transport=httpx.MockTransport(script), retry=policy(), sleep=sleep
    ) as gh:
        reply = await gh.chat("x", model="m")
    assert reply.choices[0].message.content == "hi"
    assert slept == [2.0]


def in_process_app(tmp_path: Path) -> Any:
    registry = ModelRegistry([EchoChat(), ConstantEmbeddings()], {"default": "test/echo"})
    return create_app(Settings(data_dir=tmp_path), gateway=Gateway(registry, started_at=0))


def test_the_sync_client_calls_an_app_in_process(tmp_path: Path) -> None:
    with Client(app=in_process_app(tmp_path)) as gh:
        assert gh.chat("hello there").choices[0].message.content == "hello there"
        assert gh.stream("a b").text() == "ab"
        assert gh.embed(["x", "y"], model="test/embed").data[1].embedding == [1.0, 0.0]
        with pytest.raises(NotFoundError) as caught:
            gh.chat("x", model="no-such-model")
        assert caught.value.code == "model_not_found"
        assert caught.value.request_id


async def test_the_async_client_calls_an_app_in_process(tmp_path: Path) -> None:
    async with AsyncClient(app=in_process_app(tmp_path)) as gh:
        assert (await gh.chat("hello")).choices[0].message.content == "hello"
        stream = await gh.stream("c d")
        assert await stream.text() == "cd"
        assert stream.usage is not None


def test_import_gatehouse_loads_no_client_until_asked() -> None:
    code = (
        "import sys, gatehouse\n"
        "assert 'gatehouse.client' not in sys.modules\n"
        "assert 'httpx' not in sys.modules\n"
        "assert gatehouse.Client.__name__ == 'Client'\n"
        "assert 'gatehouse.client' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_base_url_may_end_in_v1() -> None:
    assert Client("http://h:1/v1/").base_url == "http://h:1"


def test_responses_sends_input_and_reads_output_text() -> None:
    answer = {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": "m",
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "Hel"},
                    {"type": "output_text", "text": "lo"},
                ],
            },
            {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c"},
        ],
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
    }
    script = Script(httpx.Response(200, json=answer))
    reply = client(script, []).responses("Hi", model="m", max_output_tokens=5)
    assert reply.output_text == "Hello"
    assert reply.usage is not None
    assert reply.usage.total_tokens == 5
    sent = script.requests[0]
    assert sent.url.path == "/v1/responses"
    assert json.loads(sent.content) == {
        "max_output_tokens": 5,
        "model": "m",
        "input": "Hi",
        "stream": False,
    }
