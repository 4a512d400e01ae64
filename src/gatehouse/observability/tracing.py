"""OpenTelemetry tracing set up from ``observability.tracing``.

Off by default. On, it needs the ``otel`` extra (``pip install
'gatehouse[otel]'``): the packages are imported here, when tracing starts, and
a missing one is a :class:`~gatehouse.core.errors.MissingExtraError` naming
that command. The server builds one :class:`Tracing` per process (each worker
its own, after the fork) and shuts it down, flushing what is buffered, when
it stops.

The spans themselves are made by :mod:`gatehouse.gateway.tracing` with the
tracer built here. The provider is gatehouse's own, not the global one, so an
application embedding gatehouse keeps whatever it set globally.

Spans leave in batches, on the SDK's exporting thread, never on the event
loop: ``otlp-http`` (protobuf over HTTP, to ``endpoint``, by default
``http://localhost:4318/v1/traces``), ``otlp-grpc`` (to ``endpoint``, by
default ``localhost:4317``) or ``console`` (JSON on standard output, for a
look). A trace a client started (a sampled ``traceparent``) is kept or
dropped as the client decided; a trace gatehouse starts is kept with
probability ``sample_ratio``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gatehouse import __version__
from gatehouse.core.config import TracingConfig
from gatehouse.core.extras import needs_extra

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

FEATURE = "Tracing (observability.tracing)"
MAX_ATTRIBUTE_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class Tracing:
    """A tracer provider and the tracer the gateway's spans come from."""

    provider: TracerProvider
    tracer: Tracer

    def shutdown(self) -> None:
        """Export what is buffered and stop; blocks (run it off the event loop)."""
        self.provider.shutdown()


def start_tracing(config: TracingConfig, *, exporter: SpanExporter | None = None) -> Tracing:
    """The tracing ``config`` asks for (whether or not it is ``enabled``).

    An ``exporter`` given here (tests pass an in-memory one) replaces the
    configured one and receives each span as it ends, not in batches.
    """
    with needs_extra("otel", FEATURE):
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanLimits, TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": config.service_name, "service.version": __version__}
        ),
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        # Values a client chooses (a model name) are cut, not exported whole.
        span_limits=SpanLimits(max_span_attribute_length=MAX_ATTRIBUTE_LENGTH),
    )
    if exporter is None:
        provider.add_span_processor(BatchSpanProcessor(configured_exporter(config)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider, provider.get_tracer("gatehouse", __version__))


def configured_exporter(config: TracingConfig) -> SpanExporter:
    """The span exporter ``config.exporter`` names, with its endpoint and headers."""
    headers = {name: value.get_secret_value() for name, value in config.headers.items()}
    with needs_extra("otel", FEATURE):
        if config.exporter == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter(service_name=config.service_name)
        if config.exporter == "otlp-grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )

            return GrpcExporter(
                endpoint=config.endpoint, insecure=config.insecure or None, headers=headers or None
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=http_traces_url(config.endpoint), headers=headers or None)


def http_traces_url(endpoint: str | None) -> str | None:
    """The OTLP/HTTP traces URL: a bare collector address gets ``/v1/traces``,
    as the ``OTEL_EXPORTER_OTLP_ENDPOINT`` variable does; a URL with a path is
    taken as it is. ``None`` leaves the choice to the exporter (its variables,
    then ``http://localhost:4318/v1/traces``)."""
    if endpoint is None:
        return None
    if urlsplit(endpoint).path.strip("/"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"
