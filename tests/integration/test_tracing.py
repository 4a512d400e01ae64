"""Traces over real HTTP: the official SDK -> gatehouse -> the fake upstream.

In process, the spans go to the SDK's in-memory exporter; as a served process
(``gatehouse serve``), over OTLP/HTTP to a fake collector. Either way the fake
upstream must receive a ``traceparent`` in the client's trace, naming the
span of the call that reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import grpc  # type: ignore[import-untyped]
import openai
import pytest
import uvicorn
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gatehouse.core.config import Settings, TracingConfig
from gatehouse.observability.tracing import start_tracing
from gatehouse.server import create_app

from .app_thread import AppThread
from .conftest import RunningServer, free_port, start_server, stop_server
from .fake_upstream import FakeUpstream

COLLECTOR_KEY = "collector-secret-9f8e7d"


def traceparent(n: int) -> tuple[str, str, str]:
    """A client's traceparent for request ``n``: (header, trace id, span id)."""
    trace_id, span_id = f"{n:032x}", f"{n + 1000:016x}"
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    base = f"{upstream.base_url}/v1"
    return [
        {
            "name": "echo",
            "deployments": [{"provider": "openai_compat", "model": "up-echo", "base_url": base}],
        },
        {
            "name": "embed",
            "mode": "embedding",
            "deployments": [{"provider": "openai_compat", "model": "up-embed", "base_url": base}],
        },
    ]


def config(upstream: FakeUpstream, **observability: Any) -> dict[str, Any]:
    """Settings: the local models off, ``echo`` and ``embed`` at the fake upstream."""
    off = {"enabled": False}
    return {
        "local": {"chat": off, "embeddings": off},
        "models": models(upstream),
        "observability": observability,
    }


def serve(upstream: FakeUpstream, tmp_path: Path, **observability: Any) -> RunningServer:
    """``gatehouse serve`` in a process of its own, configured by :func:`config`."""
    upstream.reset()
    path = tmp_path / "gatehouse.json"  # JSON is YAML
    path.write_text(json.dumps(config(upstream, **observability)))
    return start_server(tmp_path / "data", config=path)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` on a free port of this event loop, with its lifespan."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, not an event
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Served:
    base_url: str
    upstream: FakeUpstream
    exporter: InMemorySpanExporter

    def traces(self) -> dict[str, list[ReadableSpan]]:
        found: dict[str, list[ReadableSpan]] = defaultdict(list)
        for span in self.exporter.get_finished_spans():
            found[f"{span.context.trace_id:032x}"].append(span)
        return found

    def openai(self, header: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key="unused",
            base_url=f"{self.base_url}/v1",
            max_retries=0,
            default_headers={"traceparent": header},
        )


@pytest.fixture
async def served(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Served]:
    upstream.reset()
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            **config(upstream, access_log={"enabled": False}, tracing={"enabled": True}),
        }
    )
    exporter = InMemorySpanExporter()
    app = create_app(
        settings, tracing=start_tracing(settings.observability.tracing, exporter=exporter)
    )
    async with serving(app) as base_url:
        yield Served(base_url, upstream, exporter)


def check_trace(spans: list[ReadableSpan], client_span: str, operation: str) -> ReadableSpan:
    """One request's trace: the request span under the client's, its stages, and
    the upstream call last. Returns the upstream call's span."""
    ids = {s.context.span_id for s in spans}
    roots = [s for s in spans if s.parent is None or s.parent.span_id not in ids]
    assert [(r.kind, f"{r.parent.span_id:016x}" if r.parent else None) for r in roots] == [
        (SpanKind.SERVER, client_span)
    ]
    names = {s.name for s in spans}
    assert {
        "gatehouse.observe",
        "gatehouse.auth",
        "gatehouse.metering",
        "gatehouse.limits",
    } <= names
    assert "gatehouse.route" in names
    (call,) = [s for s in spans if s.kind is SpanKind.CLIENT]
    attributes = dict(call.attributes or {})
    assert attributes["gen_ai.operation.name"] == operation
    assert attributes["gen_ai.provider.name"] == "openai"
    tokens = attributes["gen_ai.usage.input_tokens"]
    assert isinstance(tokens, int)
    assert tokens > 0
    assert attributes["server.address"] == "127.0.0.1"
    request = dict(roots[0].attributes or {})
    assert request["gen_ai.operation.name"] == operation
    assert request["gen_ai.usage.input_tokens"] == attributes["gen_ai.usage.input_tokens"]
    return call


def received_parent(upstream: FakeUpstream, index: int) -> tuple[str, str]:
    """The trace id and parent span id the upstream's ``index``-th request named."""
    version, trace_id, parent, flags = upstream.requests[index].headers["traceparent"].split("-")
    assert (version, flags) == ("00", "01")
    return trace_id, parent


async def test_each_call_is_one_trace_that_reaches_the_upstream(served: Served) -> None:
    header, trace_id, span_id = traceparent(1)
    client = served.openai(header)
    answer = await client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "one two three"}], max_tokens=20
    )
    assert answer.choices[0].message.content

    header2, trace_id2, span_id2 = traceparent(2)
    stream = await served.openai(header2).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "four five"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.split()[-2:] == ["four", "five"]

    header3, trace_id3, span_id3 = traceparent(3)
    await served.openai(header3).embeddings.create(model="embed", input="six seven")

    traces = served.traces()
    assert set(traces) == {trace_id, trace_id2, trace_id3}
    for index, (trace, client_span, operation) in enumerate(
        [
            (trace_id, span_id, "chat"),
            (trace_id2, span_id2, "chat"),
            (trace_id3, span_id3, "embeddings"),
        ]
    ):
        call = check_trace(traces[trace], client_span, operation)
        assert received_parent(served.upstream, index) == (trace, f"{call.context.span_id:016x}")
    streamed = [s for s in traces[trace_id2] if s.kind is SpanKind.SERVER]
    assert dict(streamed[0].attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)
    assert dict(streamed[0].attributes or {})["gatehouse.stream"] is True


async def test_the_messages_face_is_traced_too(served: Served) -> None:
    header, trace_id, span_id = traceparent(4)
    client = anthropic.AsyncAnthropic(
        api_key="unused",
        base_url=served.base_url,
        max_retries=0,
        default_headers={"traceparent": header},
    )
    await client.messages.create(
        model="echo", max_tokens=20, messages=[{"role": "user", "content": "eight nine"}]
    )
    (trace,) = served.traces().values()
    call = check_trace(trace, span_id, "chat")
    assert received_parent(served.upstream, 0) == (trace_id, f"{call.context.span_id:016x}")


# -- as a served process: OTLP/HTTP to a collector --------------------------------


@dataclass
class FakeCollector:
    """An OTLP/HTTP receiver: keeps each export request and its headers."""

    port: int = field(default_factory=free_port)
    exports: list[tuple[dict[str, str], ExportTraceServiceRequest]] = field(default_factory=list)
    _server: AppThread = field(default_factory=lambda: AppThread("fake-collector"))

    def start(self) -> FakeCollector:
        self._server.start(self._app, self.port)
        return self

    def stop(self) -> None:
        self._server.stop()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        return app

    async def _traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        self.exports.append((dict(request.headers), export))
        return web.Response(body=b"", content_type="application/x-protobuf")

    def spans(self) -> list[tuple[str, Any]]:
        """(service.name, span) of every span received."""
        found: list[tuple[str, Any]] = []
        for _, export in self.exports:
            for resource_spans in export.resource_spans:
                service = next(
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                )
                for scope in resource_spans.scope_spans:
                    found.extend((service, span) for span in scope.spans)
        return found


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    running = FakeCollector().start()
    yield running
    running.stop()


def test_a_served_process_exports_over_otlp_http(
    upstream: FakeUpstream, collector: FakeCollector, tmp_path: Path
) -> None:
    tracing = {
        "enabled": True,
        "exporter": "otlp-http",
        "endpoint": f"http://127.0.0.1:{collector.port}",
        "service_name": "gatehouse-test",
        "headers": {"x-collector-key": COLLECTOR_KEY},
    }
    server = serve(upstream, tmp_path, tracing=tracing)
    header, trace_id, span_id = traceparent(5)
    try:
        server.openai().chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "ten"}],
            extra_headers={"traceparent": header},
        )
    finally:
        stop_server(server)  # the spans still buffered are flushed on the way out
    assert COLLECTOR_KEY not in server.log.read_text()
    assert collector.exports
    assert {headers.get("x-collector-key") for headers, _ in collector.exports} == {COLLECTOR_KEY}
    spans = collector.spans()
    assert {service for service, _ in spans} == {"gatehouse-test"}
    assert {span.trace_id.hex() for _, span in spans} == {trace_id}
    by_name = {span.name: span for _, span in spans}
    assert by_name["chat echo"].parent_span_id.hex() == span_id
    call = by_name["chat up-echo"]
    assert received_parent(upstream, 0) == (trace_id, call.span_id.hex())


def test_with_tracing_off_the_clients_traceparent_goes_on_unchanged(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    server = serve(upstream, tmp_path)
    header, _, _ = traceparent(6)
    try:
        client = server.openai()
        for stream in (False, True):
            response = client.chat.completions.create(
                model="echo",
                messages=[{"role": "user", "content": "eleven"}],
                stream=stream,
                extra_headers={"traceparent": header, "tracestate": "acme=1"},
            )
            if stream:
                assert list(response)
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "twelve"}]
        )
    finally:
        stop_server(server)
    sent = [(r.headers.get("traceparent"), r.headers.get("tracestate")) for r in upstream.requests]
    assert sent == [(header, "acme=1"), (header, "acme=1"), (None, None)]


def test_otlp_grpc_export_reaches_a_collector() -> None:
    """The gRPC exporter as configured: plaintext to a local collector, with headers."""
    received: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: ExportTraceServiceRequest, context: Any) -> Any:
            received.append((dict(context.invocation_metadata()), request))
            return ExportTraceServiceResponse()

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        config = TracingConfig(
            enabled=True,
            exporter="otlp-grpc",
            endpoint=f"127.0.0.1:{port}",
            insecure=True,
            headers={"x-collector-key": COLLECTOR_KEY},
        )
        tracing = start_tracing(config)
        tracing.tracer.start_span("chat probe").end()
        tracing.shutdown()  # flushes the batch
    finally:
        server.stop(grace=None)
    ((metadata, export),) = received
    assert metadata["x-collector-key"] == COLLECTOR_KEY
    names = [s.name for rs in export.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert names == ["chat probe"]
