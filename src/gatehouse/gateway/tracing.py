"""OpenTelemetry spans for gateway calls (``observability.tracing.enabled``).

Imported only when tracing is on: it needs the ``otel`` extra. The spans of
one request, one trace::

    chat {model}              SERVER    the request, from the client's traceparent
      gatehouse.observe       INTERNAL  one per pipeline stage, nested as they run
        gatehouse.auth
          ...
            gatehouse.route   INTERNAL  routing: retries, fallbacks
              chat {upstream model}  CLIENT  one per upstream call attempt; its
                                             context is the upstream's traceparent

A stage's span ends when the stage returns: for a stream, once the stream is
open. The request span and the attempt's span end with the stream's last
chunk (or when the client goes away).

Attributes follow the OpenTelemetry GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.provider.name`` and the older
``gen_ai.system``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens`` ...) plus ``gatehouse.*`` (deployment, group,
team, principal id, cache outcome, retries, fallbacks). Never a prompt, an
answer or a credential: only names, numbers and finish reasons. A failure sets
the span's status to error, with ``error.type`` from the closed vocabulary of
:func:`gatehouse.core.errors.error_type` and the error's code as description,
never its message (an upstream's message may quote the prompt).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import GatehouseError, error_type
from gatehouse.core.rerank import RerankResponse
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)
from gatehouse.gateway.pipeline import CallContext, Next, Result
from gatehouse.providers.base import (
    AnyProvider,
    ChatProvider,
    EmbeddingProvider,
    Readiness,
    ResponsesProvider,
)
from gatehouse.providers.upstream import TRACE_CONTEXT

Attributes = dict[str, Any]
# A model name is the client's to choose: a span name keeps this much of it
# (attribute values are cut by the provider's limits, gatehouse.observability.tracing).
MAX_NAME = 128
Answer = TypeVar("Answer", ChatCompletion, EmbeddingResponse)
P = TypeVar("P", bound=ChatProvider | EmbeddingProvider)
Item = TypeVar("Item")

# gen_ai.provider.name of each built-in provider (the convention's well-known
# values); a plugin's is its registered name.
PROVIDER_NAMES = {
    "openai_compat": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "local": "gatehouse.local",
}


class SpanTracer:
    """The :class:`gatehouse.gateway.trace_context.Tracer` that makes OpenTelemetry spans."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._propagator = TraceContextTextMapPropagator()
        # deployment id -> gen_ai.provider.name, for the request span.
        self._provider_names: dict[str, str] = {}

    # -- the request ----------------------------------------------------------

    def request(self, call: Next) -> Next:
        tracer = self._tracer

        async def traced(ctx: CallContext) -> Result:
            if ctx.headers:  # from a client, who may continue its own trace
                parent = self._propagator.extract(ctx.headers)
                kind = SpanKind.SERVER
            else:  # in process (the CLI, RAG): inside whatever span is current
                parent, kind = None, SpanKind.INTERNAL
            span = tracer.start_span(
                f"{ctx.endpoint} {ctx.model[:MAX_NAME]}",
                context=parent,
                kind=kind,
                attributes=_request_attributes(ctx),
                record_exception=False,
                set_status_on_exception=False,
            )
            token = otel_context.attach(trace.set_span_in_context(span, parent))
            try:
                result = await call(ctx)
            except BaseException as exc:
                self._end_request(span, ctx, None, exc)
                raise
            finally:
                otel_context.detach(token)
            if isinstance(result, ChatCompletion | EmbeddingResponse | RerankResponse):
                self._end_request(span, ctx, result, None)
                return result
            return self._watch_request(span, ctx, result)

        return traced

    async def _watch_request(
        self, span: Span, ctx: CallContext, chunks: AsyncIterator[ChatCompletionChunk]
    ) -> AsyncIterator[ChatCompletionChunk]:
        seen = _StreamFacts()
        error: BaseException | None = None
        try:
            async for chunk in chunks:
                seen.add(chunk)
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            if span.is_recording():
                span.set_attributes(seen.attributes())
            self._end_request(span, ctx, None, error)

    def _end_request(
        self,
        span: Span,
        ctx: CallContext,
        result: ChatCompletion | EmbeddingResponse | RerankResponse | None,
        error: BaseException | None,
    ) -> None:
        if span.is_recording():
            attributes = _outcome_attributes(ctx)
            provider = self._provider_names.get(ctx.deployment or "")
            if provider is not None:
                attributes["gen_ai.provider.name"] = attributes["gen_ai.system"] = provider
            if result is not None:
                attributes.update(_response_attributes(result))
            elif ctx.usage is not None:
                attributes.update(_usage_attributes(ctx.usage))
            span.set_attributes(attributes)
            if error is not None:
                _record_failure(span, error)
        span.end()

    # -- the stages -------------------------------------------------------------

    def stage(self, name: str, call: Next) -> Next:
        tracer = self._tracer
        span_name = f"gatehouse.{name}"
        attributes = {"gatehouse.stage": name}

        async def traced(ctx: CallContext) -> Result:
            if not trace.get_current_span().is_recording():
                # A trace sampled out: its stage spans would be dropped too (the
                # sampler follows the parent), so none is made.
                return await call(ctx)
            span = tracer.start_span(
                span_name,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            )
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                return await call(ctx)
            except BaseException as exc:
                _record_failure(span, exc)
                raise
            finally:
                otel_context.detach(token)
                span.end()

        return traced

    # -- the upstream calls -----------------------------------------------------

    def provider(
        self,
        provider: AnyProvider,
        *,
        deployment: str,
        group: str,
        config: DeploymentConfig | None,
    ) -> AnyProvider:
        name = PROVIDER_NAMES.get(config.provider, config.provider) if config else "gatehouse.local"
        self._provider_names[deployment] = name
        attributes: Attributes = {
            "gen_ai.provider.name": name,
            "gen_ai.system": name,
            "gen_ai.request.model": config.model if config else provider.info.id,
            "gatehouse.deployment": deployment,
            "gatehouse.group": group,
        }
        if config is not None and config.base_url:
            attributes.update(_server_attributes(config.base_url))
        calls = _Calls(self._tracer, self._propagator, attributes)
        # The registry checked each group's providers against its kind.
        if isinstance(provider, ResponsesProvider):
            return TracedResponses(cast(ChatProvider, provider), calls)
        if provider.info.kind == "chat":
            return TracedChat(cast(ChatProvider, provider), calls)
        if provider.info.kind == "rerank":
            return provider  # not traced yet: the request span covers the call
        return TracedEmbeddings(cast(EmbeddingProvider, provider), calls)


class _Calls:
    """Starts the CLIENT span of one upstream call attempt and makes its context
    the ``traceparent`` the upstream receives."""

    def __init__(
        self,
        tracer: trace.Tracer,
        propagator: TraceContextTextMapPropagator,
        attributes: Attributes,
    ) -> None:
        self._tracer = tracer
        self._propagator = propagator
        self._attributes = attributes
        self._model = attributes["gen_ai.request.model"]

    def start(self, operation: str, request_attributes: Attributes) -> tuple[Span, dict[str, str]]:
        span = self._tracer.start_span(
            f"{operation} {self._model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": operation,
                **self._attributes,
                **request_attributes,
            },
            record_exception=False,
            set_status_on_exception=False,
        )
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        return span, carrier

    async def streamed(
        self,
        operation: str,
        attributes: Attributes,
        items: AsyncIterator[Item],
        seen: Callable[[Item], None] | None = None,
        facts: Callable[[], Attributes] | None = None,
    ) -> AsyncIterator[Item]:
        """Pass on ``items``, a streamed answer, as one upstream call attempt: the
        span ends with the stream, with ``facts`` about what ``seen`` was shown."""
        span, carrier = self.start(operation, attributes)
        try:
            # The upstream request goes out on the first step of the stream.
            token = TRACE_CONTEXT.set(carrier)
            try:
                first = await anext(items, None)
            finally:
                TRACE_CONTEXT.reset(token)
            if first is None:
                return
            if seen is not None:
                seen(first)
            yield first
            async for item in items:
                if seen is not None:
                    seen(item)
                yield item
        except BaseException as exc:
            _record_failure(span, exc)
            raise
        finally:
            close = getattr(items, "aclose", None)
            if close is not None:
                await close()
            if facts is not None and span.is_recording():
                span.set_attributes(facts())
            span.end()

    async def whole(
        self, operation: str, attributes: Attributes, call: Awaitable[Answer]
    ) -> Answer:
        """Await ``call``, a whole (not streamed) answer, as one upstream call attempt."""
        span, carrier = self.start(operation, attributes)
        # ``call`` is a coroutine: its request goes out when awaited, here.
        token = TRACE_CONTEXT.set(carrier)
        try:
            answer = await call
        except BaseException as exc:
            _record_failure(span, exc)
            span.end()
            raise
        finally:
            TRACE_CONTEXT.reset(token)
        if span.is_recording():
            span.set_attributes(_response_attributes(answer))
        span.end()
        return answer


class _Traced(Generic[P]):
    """A provider whose every call is a CLIENT span."""

    def __init__(self, inner: P, calls: _Calls) -> None:
        self.info = inner.info
        self._inner = inner
        # What it traces, for what a span adds nothing to (token counting).
        self.wrapped = inner
        self._calls = calls

    def readiness(self) -> Readiness:
        return self._inner.readiness()

    async def aclose(self) -> None:
        await self._inner.aclose()


class TracedChat(_Traced[ChatProvider]):
    """A traced :class:`ChatProvider`."""

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        attributes = _chat_request_attributes(request)
        return await self._calls.whole("chat", attributes, self._inner.complete(request))

    def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        seen = _StreamFacts()
        attributes = _chat_request_attributes(request)
        chunks = self._inner.stream(request)
        return self._calls.streamed("chat", attributes, chunks, seen.add, seen.attributes)


class TracedResponses(TracedChat):
    """A traced chat provider that also speaks the Responses API (``api: responses``):
    its native calls are CLIENT spans too."""

    async def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        span, carrier = self._calls.start("chat", _responses_request_attributes(body, False))
        token = TRACE_CONTEXT.set(carrier)
        try:
            return await cast(ResponsesProvider, self._inner).respond(body)
        except BaseException as exc:
            _record_failure(span, exc)
            raise
        finally:
            TRACE_CONTEXT.reset(token)
            span.end()

    def stream_respond(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        attributes = _responses_request_attributes(body, True)
        events = cast(ResponsesProvider, self._inner).stream_respond(body)
        return self._calls.streamed("chat", attributes, events)


class TracedEmbeddings(_Traced[EmbeddingProvider]):
    """A traced :class:`EmbeddingProvider`."""

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        attributes = _embedding_request_attributes(request)
        return await self._calls.whole("embeddings", attributes, self._inner.embed(request))


class _StreamFacts:
    """What a stream's chunks say about the answer: model, id, finish reasons, usage."""

    __slots__ = ("finish_reasons", "id", "model", "usage")

    def __init__(self) -> None:
        self.model: str | None = None
        self.id: str | None = None
        self.finish_reasons: list[str] = []
        self.usage: Usage | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        if self.model is None:
            self.model, self.id = chunk.model, chunk.id
        for choice in chunk.choices:
            if choice.finish_reason:
                self.finish_reasons.append(choice.finish_reason)
        if chunk.usage is not None:
            self.usage = chunk.usage

    def attributes(self) -> Attributes:
        found: Attributes = {}
        if self.model is not None:
            found["gen_ai.response.model"] = self.model
            found["gen_ai.response.id"] = self.id
        if self.finish_reasons:
            found["gen_ai.response.finish_reasons"] = self.finish_reasons
        if self.usage is not None:
            found.update(_usage_attributes(self.usage))
        return found


def _request_attributes(ctx: CallContext) -> Attributes:
    request = ctx.request
    found: Attributes = {
        "gen_ai.operation.name": ctx.endpoint,
        "gen_ai.request.model": ctx.model,
        "gatehouse.request_id": ctx.request_id,
    }
    if isinstance(request, ChatCompletionRequest):
        found.update(_chat_request_attributes(request))
    elif isinstance(request, EmbeddingRequest):
        found.update(_embedding_request_attributes(request))
    return found


def _chat_request_attributes(request: ChatCompletionRequest) -> Attributes:
    found: Attributes = {"gatehouse.stream": request.stream}
    limit = request.token_limit()
    if limit is not None:
        found["gen_ai.request.max_tokens"] = limit
    if request.temperature is not None:
        found["gen_ai.request.temperature"] = request.temperature
    if request.top_p is not None:
        found["gen_ai.request.top_p"] = request.top_p
    if request.seed is not None:
        found["gen_ai.request.seed"] = request.seed
    if request.n != 1:
        found["gen_ai.request.choice.count"] = request.n
    return found


def _responses_request_attributes(body: dict[str, Any], stream: bool) -> Attributes:
    found: Attributes = {"gatehouse.stream": stream}
    for key, name in (
        ("max_output_tokens", "gen_ai.request.max_tokens"),
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
    ):
        value = body.get(key)
        if isinstance(value, int | float):
            found[name] = value
    return found


def _embedding_request_attributes(request: EmbeddingRequest) -> Attributes:
    found: Attributes = {"gen_ai.request.encoding_formats": (request.encoding_format,)}
    if request.dimensions is not None:
        found["gen_ai.embeddings.dimension.count"] = request.dimensions
    return found


def _response_attributes(result: ChatCompletion | EmbeddingResponse | RerankResponse) -> Attributes:
    found: Attributes = {"gen_ai.response.model": result.model}
    if isinstance(result, ChatCompletion):
        found["gen_ai.response.id"] = result.id
        reasons = [c.finish_reason for c in result.choices if c.finish_reason]
        if reasons:
            found["gen_ai.response.finish_reasons"] = reasons
    usage = result.usage.as_usage() if isinstance(result, RerankResponse) else result.usage
    found.update(_usage_attributes(usage))
    return found


def _usage_attributes(usage: Usage) -> Attributes:
    return {
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
    }


def _outcome_attributes(ctx: CallContext) -> Attributes:
    """What the pipeline learned: who called, what served it, how."""
    found: Attributes = {
        "gatehouse.retries": ctx.retries,
        "gatehouse.fallbacks": ctx.fallbacks,
        "gatehouse.coalesced": ctx.coalesced,
    }
    optional = {
        "gatehouse.group": ctx.group,
        "gatehouse.deployment": ctx.deployment,
        "gatehouse.cache": ctx.cache,
        "gatehouse.refusal": ctx.refusal,
        "gatehouse.principal": None if ctx.principal is None else ctx.principal.id,
        "gatehouse.team": None if ctx.principal is None else ctx.principal.team,
    }
    found.update((key, value) for key, value in optional.items() if value is not None)
    return found


def _server_attributes(base_url: str) -> Attributes:
    parts = urlsplit(base_url)
    found: Attributes = {}
    if parts.hostname:
        found["server.address"] = parts.hostname
        found["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    return found


def _record_failure(span: Span, error: BaseException) -> None:
    """Mark ``span`` failed: the closed error type and the error's code, never its message.

    A cancellation (the client went away) is not the span's failure."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        span.set_attribute("gatehouse.cancelled", True)
        return
    code = error.error_code if isinstance(error, GatehouseError) else "internal_error"
    span.set_status(Status(StatusCode.ERROR, code))
    attributes: Mapping[str, Any] = {"error.type": error_type(error)}
    if isinstance(error, GatehouseError):
        attributes = {**attributes, "http.response.status_code": error.http_status}
    span.set_attributes(attributes)
