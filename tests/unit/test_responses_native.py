"""Native Responses calls: the body sent upstream, the usage read back, what is stored."""

from __future__ import annotations

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import TypeAdapter, ValidationError

from gatehouse.core.config import DeploymentConfig, TracingConfig
from gatehouse.core.errors import UnsupportedParameterError
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.faces.responses import ResponsesRequest, shell, to_openai
from gatehouse.faces.responses_input import input_items
from gatehouse.faces.responses_items import Item
from gatehouse.faces.responses_native import NativeCall, native_body, to_store, usage_of
from gatehouse.gateway.tracing import SpanTracer
from gatehouse.observability.tracing import start_tracing
from gatehouse.providers.base import ModelInfo, ResponsesProvider
from gatehouse.providers.mock_transport import MockTransport, streamed
from gatehouse.providers.openai_compat import OpenAIResponsesProvider
from gatehouse.providers.transport import UpstreamRequest, UpstreamResponse


def test_the_upstream_gets_every_item_unnamed_and_store_false_never_gatehouses_own_fields() -> None:
    fields = {
        "model": "m",
        "input": "now",
        "store": True,
        "previous_response_id": "resp_1",
        "stream": True,
        "client_metadata": {"x": "y"},
        "instructions": "Be brief.",
    }
    content = [{"type": "input_text", "text": "a"}]
    items = [{"type": "message", "id": "msg_1", "role": "user", "content": content}]
    assert native_body(fields, items) == {
        "model": "m",
        "input": [{"type": "message", "role": "user", "content": content}],
        "instructions": "Be brief.",
        "store": False,
    }


def test_usage_is_brought_to_the_canonical_buckets() -> None:
    usage = usage_of(
        {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 3},
            "total_tokens": 17,
        }
    )
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 7, 17)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 4
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 3


def test_the_stored_response_keeps_the_upstreams_items_under_gatehouses_id() -> None:
    request = ResponsesRequest(model="public", input="hi", metadata={"k": "v"})
    base = shell(request, response_id="resp_ours", created_at=1)
    upstream = {
        "id": "resp_theirs",
        "object": "response",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "model": "upstream-model",
        "output": [
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [],
                "encrypted_content": "e",
                "content": [],
            },
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "incomplete",
                "content": [
                    {"type": "output_text", "text": "hel", "annotations": [], "logprobs": []}
                ],
            },
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        ],
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
    }
    stored = to_store(upstream, base)
    assert (stored.id, stored.model, stored.metadata) == ("resp_ours", "public", {"k": "v"})
    assert stored.status == "incomplete"
    assert stored.incomplete_details is not None
    assert stored.incomplete_details.reason == "max_output_tokens"
    assert [item.type for item in stored.output] == ["reasoning", "message"]
    assert stored.output_text() == "hel"
    assert stored.usage is not None
    assert (stored.usage.input_tokens, stored.usage.output_tokens) == (3, 2)


class _Chat:
    """A chat-only provider (no respond)."""


class _Native:
    async def respond(self, body: dict[str, object]) -> dict[str, object]:
        return {}

    def stream_respond(self, body: dict[str, object]) -> object:
        return iter(())


def test_only_a_responses_provider_and_an_unchanged_request_go_native() -> None:
    chat = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "a"}]}
    )
    native = NativeCall(body={}, request=chat)
    assert isinstance(_Native(), ResponsesProvider)
    assert native.applies(chat, _Native())
    assert native.applies(chat.model_copy(), _Native())  # an unchanged copy
    assert not native.applies(chat, _Chat())
    changed = chat.model_copy(update={"messages": []})
    assert not native.applies(changed, _Native())


RESPONSE = {
    "id": "resp_up",
    "object": "response",
    "status": "completed",
    "model": "up-model",
    "output": [],
    "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
}


async def test_a_traced_native_deployment_is_still_native_and_each_call_is_a_span() -> None:
    exporter = InMemorySpanExporter()
    tracing = start_tracing(TracingConfig(enabled=True), exporter=exporter)
    seen: list[UpstreamRequest] = []

    def answer(request: UpstreamRequest) -> UpstreamResponse:
        seen.append(request)
        if not request.stream:
            return UpstreamResponse(200, {}, orjson.dumps(RESPONSE))
        done = {"type": "response.completed", "sequence_number": 0, "response": RESPONSE}
        body = b"event: response.completed\ndata: " + orjson.dumps(done) + b"\n\n"
        return UpstreamResponse(200, {}, lines=streamed(body))

    config = DeploymentConfig(
        provider="openai_compat", api="responses", model="up-model", base_url="http://up/v1"
    )
    info = ModelInfo(id="d", kind="chat", owned_by="test", context_window=100)
    inner = OpenAIResponsesProvider(
        config, info=info, api_key=None, transport=MockTransport(answer)
    )
    try:
        provider = SpanTracer(tracing.tracer).provider(
            inner, deployment="d", group="g", config=config
        )
        assert isinstance(provider, ResponsesProvider)
        assert (await provider.respond({"model": "public", "input": "hi"}))["id"] == "resp_up"
        events = [e async for e in provider.stream_respond({"model": "public", "input": "hi"})]
        assert [e["type"] for e in events] == ["response.completed"]
    finally:
        await inner.aclose()
        tracing.shutdown()
    assert [r.url for r in seen] == ["http://up/v1/responses"] * 2
    assert [orjson.loads(r.body)["model"] for r in seen] == ["up-model", "up-model"]
    assert [orjson.loads(r.body)["stream"] for r in seen] == [False, True]
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["chat up-model", "chat up-model"]
    assert all(r.headers.get("traceparent") for r in seen)


def test_api_responses_needs_an_openai_compatible_deployment() -> None:
    with pytest.raises(ValidationError, match="api: responses needs provider openai_compat"):
        DeploymentConfig(provider="anthropic", api="responses", model="m")


def test_an_upstreams_reasoning_state_is_native_only() -> None:
    raw = [
        {"type": "message", "role": "user", "content": "hi"},
        {"type": "reasoning", "summary": [], "encrypted_content": "opaque-upstream-state"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "yo"}],
        },
        {"type": "message", "role": "user", "content": "again"},
    ]
    request = ResponsesRequest(model="m", input=raw)
    with pytest.raises(UnsupportedParameterError) as refused:
        input_items(raw)
    assert refused.value.param == "input[1].encrypted_content"
    items = input_items(raw, foreign_reasoning=True)
    native_only: list[str] = []
    chat = to_openai(request, items, foreign=native_only)
    assert native_only == ["input[1].encrypted_content"]
    assert [m.role for m in chat.messages] == ["user", "assistant", "user"]
    dumped = TypeAdapter(list[Item]).dump_python(items, mode="json", exclude_none=True)
    body = native_body({"model": "m"}, dumped)
    assert [i["type"] for i in body["input"]] == ["message", "reasoning", "message", "message"]
    call = NativeCall(body=body, request=chat, native_only=native_only)
    with pytest.raises(UnsupportedParameterError):
        call.check_chat()
