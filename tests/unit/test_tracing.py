"""OpenTelemetry traces of gateway calls, read from the SDK's in-memory exporter.

The gateway runs its real stages (governance: auth, metering, limits) and real
OpenAI-compatible providers whose transport is a MockTransport, so what the
upstream receives (the propagated ``traceparent``) is seen without a socket.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gatehouse.core.config import Settings, TracingConfig
from gatehouse.core.errors import GatehouseError, MissingExtraError
from gatehouse.gateway import Gateway
from gatehouse.gateway.trace_context import ClientContext, valid_traceparent
from gatehouse.gateway.tracing import SpanTracer
from gatehouse.observability.tracing import configured_exporter, http_traces_url, start_tracing
from gatehouse.providers import UpstreamResponse

from .traced_gateway import (
    API_KEY,
    CLIENT_SPAN,
    PROMPT,
    TRACE_ID,
    TRACEPARENT,
    Upstream,
    build,
    chat_call,
    embed_call,
    run,
)


@dataclass
class Traced:
    gateway: Gateway
    upstream: Upstream
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    tracing = start_tracing(TracingConfig(enabled=True), exporter=exporter)
    gateway, upstream = await build(tmp_path, SpanTracer(tracing.tracer))
    try:
        yield Traced(gateway, upstream, exporter)
    finally:
        await gateway.stop()
        tracing.shutdown()


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def assert_one_trace_under_the_client(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    """Every span is in the client's trace; the request span is the client's child
    and the only root here. Returns the request span."""
    assert {hex_id(s.context.trace_id, 32) for s in spans} == {TRACE_ID}
    ids = {s.context.span_id for s in spans}
    roots = [s for s in spans if s.parent is None or s.parent.span_id not in ids]
    assert len(roots) == 1
    (root,) = roots
    assert root.parent is not None
    assert hex_id(root.parent.span_id, 16) == CLIENT_SPAN
    assert root.kind is SpanKind.SERVER
    return root


def chain_of(spans: Sequence[ReadableSpan], leaf: ReadableSpan) -> list[str]:
    """Span names from ``leaf`` up to the root."""
    by_id = {s.context.span_id: s for s in spans}
    names = []
    current: ReadableSpan | None = leaf
    while current is not None:
        names.append(current.name)
        current = by_id.get(current.parent.span_id) if current.parent else None
    return names


def assert_nothing_secret(spans: Sequence[ReadableSpan]) -> None:
    for span in spans:
        text = f"{dict(span.attributes or {})} {span.status.description} {span.name}"
        assert API_KEY not in text
        for word in PROMPT.split():
            if len(word) > 3:
                assert word not in text, (span.name, word)


async def test_a_chat_call_is_one_trace_with_stage_spans_and_the_upstream_call(
    traced: Traced,
) -> None:
    await run(traced.gateway, chat_call())
    spans = traced.spans()
    root = assert_one_trace_under_the_client(spans)
    assert root.name == "chat m"
    (call,) = traced.named("chat up-model")
    assert call.kind is SpanKind.CLIENT
    # Each stage inside the one before it, the upstream call inside routing.
    assert chain_of(spans, call) == [
        "chat up-model",
        "gatehouse.route",
        "gatehouse.limits",
        "gatehouse.metering",
        "gatehouse.auth",
        "chat m",
    ]
    attributes = dict(root.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "m"
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.response.model"] == "up-model-2026"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] == 7
    assert attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gatehouse.deployment"] == "m"
    assert attributes["gatehouse.principal"] == "anonymous"
    assert attributes["gatehouse.retries"] == 0
    upstream = dict(call.attributes or {})
    assert upstream["gen_ai.request.model"] == "up-model"
    assert upstream["gen_ai.system"] == "openai"
    assert upstream["server.address"] == "upstream.internal"
    assert upstream["server.port"] == 8000
    assert upstream["gen_ai.usage.output_tokens"] == 3
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    # The upstream is told the trace, with the call's own span as its parent.
    assert traced.upstream.traceparents() == [
        f"00-{TRACE_ID}-{hex_id(call.context.span_id, 16)}-01"
    ]
    assert_nothing_secret(spans)


async def test_a_streamed_chat_ends_its_spans_with_the_stream(traced: Traced) -> None:
    chunks = await traced.gateway.handle(chat_call(stream=True))
    assert isinstance(chunks, AsyncIterator)
    first = await anext(chunks)
    assert first.choices[0].delta.content == "green"
    # Open, not finished: the request and the upstream call are still going.
    assert {s.name for s in traced.spans()} >= {"gatehouse.auth", "gatehouse.route"}
    assert not traced.named("chat m")
    assert not traced.named("chat up-model")
    rest = [c async for c in chunks]
    assert rest
    spans = traced.spans()
    root = assert_one_trace_under_the_client(spans)
    (call,) = traced.named("chat up-model")
    for span in (root, call):
        attributes = dict(span.attributes or {})
        assert attributes["gatehouse.stream"] is True
        assert attributes["gen_ai.response.model"] == "up-model-2026"
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert attributes["gen_ai.usage.input_tokens"] == 7
        assert attributes["gen_ai.usage.output_tokens"] == 1
    assert traced.upstream.traceparents() == [
        f"00-{TRACE_ID}-{hex_id(call.context.span_id, 16)}-01"
    ]
    assert_nothing_secret(spans)


async def test_embeddings_are_traced_the_same_way(traced: Traced) -> None:
    await run(traced.gateway, embed_call())
    spans = traced.spans()
    root = assert_one_trace_under_the_client(spans)
    assert root.name == "embeddings e"
    (call,) = traced.named("embeddings up-embed")
    assert dict(root.attributes or {})["gen_ai.operation.name"] == "embeddings"
    assert dict(call.attributes or {})["gen_ai.usage.input_tokens"] == 4
    assert dict(call.attributes or {})["gen_ai.response.model"] == "up-embed-2026"
    assert traced.upstream.traceparents() == [
        f"00-{TRACE_ID}-{hex_id(call.context.span_id, 16)}-01"
    ]
    assert_nothing_secret(spans)


async def test_without_a_client_traceparent_the_request_starts_a_trace(traced: Traced) -> None:
    await run(traced.gateway, chat_call(headers={"x-other": "1"}))
    spans = traced.spans()
    assert len({s.context.trace_id for s in spans}) == 1
    (root,) = traced.named("chat m")
    assert root.parent is None
    (parent,) = traced.upstream.traceparents()
    assert parent is not None
    assert parent.split("-")[1] == hex_id(root.context.trace_id, 32)


async def test_a_clients_long_model_name_is_cut_in_the_span(traced: Traced) -> None:
    ctx = chat_call()
    ctx.request = ctx.request.model_copy(update={"model": "x" * 5000})
    with pytest.raises(GatehouseError):  # no such model
        await run(traced.gateway, ctx)
    (root,) = [s for s in traced.spans() if s.kind is SpanKind.SERVER]
    assert root.name == "chat " + "x" * 128
    assert dict(root.attributes or {})["gen_ai.request.model"] == "x" * 1024
    assert dict(root.attributes or {})["error.type"] == "bad_request"


async def test_each_attempt_is_a_span_and_a_failure_carries_the_closed_error_type(
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    tracing = start_tracing(TracingConfig(enabled=True), exporter=exporter)
    gateway, upstream = await build(tmp_path, SpanTracer(tracing.tracer), retries=1)
    # The error message quotes the prompt, as some upstreams' do.
    body = orjson.dumps({"error": {"message": f"slow down: {PROMPT}", "type": "rate_limit"}})
    upstream.failures = [UpstreamResponse(429, {}, body), UpstreamResponse(429, {}, body)]
    try:
        with pytest.raises(GatehouseError):
            await run(gateway, chat_call())
    finally:
        await gateway.stop()
    spans = list(exporter.get_finished_spans())
    assert_one_trace_under_the_client(spans)
    attempts = [s for s in spans if s.name == "chat up-model"]
    assert len(attempts) == 2
    assert len(set(upstream.traceparents())) == 2  # each attempt its own parent span
    for span in [*attempts, *(s for s in spans if s.name == "chat m")]:
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "rate_limit_exceeded"
        assert dict(span.attributes or {})["error.type"] == "rate_limit"
        assert dict(span.attributes or {})["http.response.status_code"] == 429
    (root,) = (s for s in spans if s.name == "chat m")
    assert dict(root.attributes or {})["gatehouse.retries"] == 1
    assert_nothing_secret(spans)
    tracing.shutdown()


async def test_a_client_sampled_trace_is_kept_and_an_unsampled_new_one_is_not(
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    tracing = start_tracing(TracingConfig(enabled=True, sample_ratio=0.0), exporter=exporter)
    gateway, upstream = await build(tmp_path, SpanTracer(tracing.tracer))
    try:
        await run(gateway, chat_call(headers={}))  # a new trace: dropped at ratio 0
        assert exporter.get_finished_spans() == ()
        await run(gateway, chat_call())  # the client sampled it: kept
    finally:
        await gateway.stop()
    assert_one_trace_under_the_client(list(exporter.get_finished_spans()))
    unsampled, sampled = upstream.traceparents()
    # Unsampled is still propagated, flagged so, for the upstream to decide alike.
    assert unsampled is not None
    assert int(unsampled.rsplit("-", 1)[1], 16) & 1 == 0  # the sampled bit
    assert sampled is not None
    assert sampled.startswith(f"00-{TRACE_ID}-")
    assert sampled.endswith("-01")
    tracing.shutdown()


async def test_tracing_off_forwards_the_clients_context_and_builds_no_span(
    tmp_path: Path,
) -> None:
    gateway, upstream = await build(tmp_path, ClientContext())
    try:
        headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=abc"}
        await run(gateway, chat_call(headers=headers))
        await run(gateway, chat_call(stream=True, headers=headers))
        await run(gateway, chat_call(headers={"traceparent": "00-nonsense"}))
        await run(gateway, chat_call(headers={}))
    finally:
        await gateway.stop()
    sent = [(r.headers.get("traceparent"), r.headers.get("tracestate")) for r in upstream.requests]
    assert sent == [(TRACEPARENT, "vendor=abc")] * 2 + [(None, None)] * 2


async def test_no_tracer_sends_no_trace_context(tmp_path: Path) -> None:
    gateway, upstream = await build(tmp_path, None)
    try:
        await run(gateway, chat_call())
    finally:
        await gateway.stop()
    assert upstream.traceparents() == [None]


def test_tracing_off_never_imports_opentelemetry(tmp_path: Path) -> None:
    """Off, no span can be built: the OpenTelemetry packages are not even loaded,
    though the client's traceparent still reaches the upstream."""
    code = f"""
import asyncio, sys
from pathlib import Path
from gatehouse.gateway.trace_context import ClientContext
from tests.unit.traced_gateway import build, chat_call, run

async def main():
    gateway, upstream = await build(Path({str(tmp_path)!r}), ClientContext())
    await run(gateway, chat_call())
    await gateway.stop()
    assert upstream.traceparents() == [{TRACEPARENT!r}], upstream.traceparents()

asyncio.run(main())
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    ).stdout
    assert out.strip() == "[]"


def test_a_traceparent_is_checked_before_it_is_passed_on() -> None:
    assert valid_traceparent(TRACEPARENT)
    assert valid_traceparent(f"01-{TRACE_ID}-{CLIENT_SPAN}-01-future")
    for bad in (
        f"ff-{TRACE_ID}-{CLIENT_SPAN}-01",  # version ff is invalid
        f"00-{TRACE_ID}-{CLIENT_SPAN}-01-extra",  # version 00 has no more fields
        f"00-{'0' * 32}-{CLIENT_SPAN}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID.upper()}-{CLIENT_SPAN}-01",
        f"00-{TRACE_ID}-{CLIENT_SPAN}-01\r\nx-injected: 1",
        "",
    ):
        assert not valid_traceparent(bad), bad


def test_the_configured_exporter() -> None:
    assert isinstance(configured_exporter(TracingConfig(exporter="console")), ConsoleSpanExporter)
    grpc = TracingConfig(exporter="otlp-grpc", endpoint="localhost:4317", insecure=True)
    assert isinstance(configured_exporter(grpc), GrpcExporter)
    http = TracingConfig(exporter="otlp-http", headers={"x-api-key": "k"})
    assert isinstance(configured_exporter(http), HttpExporter)
    assert http_traces_url(None) is None
    assert http_traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert http_traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert http_traces_url("https://x.example/otlp/v1/traces") == "https://x.example/otlp/v1/traces"


def test_tracing_without_the_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)
    with pytest.raises(MissingExtraError) as caught:
        start_tracing(TracingConfig(enabled=True))
    assert "pip install 'gatehouse[otel]'" in caught.value.message


def test_the_collector_headers_are_secrets() -> None:
    config = TracingConfig(enabled=True, headers={"x-honeycomb-team": "hc-secret-key"})
    assert "hc-secret-key" not in repr(config)
    assert "hc-secret-key" not in str(Settings(observability={"tracing": config.model_dump()}))
