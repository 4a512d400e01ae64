"""The request pipeline: stages in a fixed order around one terminal call.

Each stage is an object with one async method, ``__call__(ctx, call_next)``.
It may return early (a cache hit, a rejection: raise a ``GatehouseError``), or
call ``call_next(ctx)`` and act on the result, like ASGI middleware. A
streamed result is an async iterator of chunks: a stage that needs what
happens during the stream (metering, caching) wraps the iterator.

The chain is built once, at start-up; a request pays one call per stage and
no allocation beyond its :class:`CallContext`. Stages never import each
other; their order is data, set in :mod:`gatehouse.gateway.service`.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from gatehouse.catalog.pricing import PricingTable, TokenCounts
from gatehouse.catalog.tokens import prompt_tokens
from gatehouse.core.observation import Refusal
from gatehouse.core.principal import Principal
from gatehouse.core.rerank import RerankRequest, RerankResponse
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)

if TYPE_CHECKING:
    from gatehouse.faces.responses_native import NativeCall
    from gatehouse.gateway.trace_context import Tracer

Endpoint = Literal["chat", "embeddings", "rerank"]
ChatStream = AsyncIterator[ChatCompletionChunk]
Result = ChatCompletion | EmbeddingResponse | RerankResponse | ChatStream
Next = Callable[["CallContext"], Awaitable[Result]]
CacheStatus = Literal["hit", "miss", "bypass"]
NO_TOKENS = TokenCounts(0, 0)


@dataclass(slots=True)
class CallContext:
    """What one request carries through the pipeline.

    Stages fill the optional fields as the request moves along: ``principal``
    (auth), ``group``/``deployment`` (routing, which also counts ``retries``
    and ``fallbacks`` and adds up ``upstream_seconds``, the time spent in calls
    to deployments), ``usage``/``first_token_at`` (the provider call),
    ``cache`` (the cache), ``coalesced`` (true when this request shared another
    identical in-flight request's upstream call), ``refusal`` (admission, when
    a limit or budget turns the request away), ``guard`` (the guard stage: each
    rule that acted, with its action). ``response_headers``
    are added to the HTTP response by the server. ``tag`` names what caused a
    call made on a caller's behalf (``rag.answer``, ...); the ledger keeps it.
    """

    request_id: str
    endpoint: Endpoint
    request: ChatCompletionRequest | EmbeddingRequest | RerankRequest
    headers: Mapping[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    principal: Principal | None = None
    group: str | None = None
    deployment: str | None = None
    retries: int = 0
    fallbacks: int = 0
    upstream_seconds: float | None = None
    refusal: Refusal | None = None
    guard: tuple[tuple[str, str], ...] = ()
    usage: Usage | None = None
    first_token_at: float | None = None
    cache: CacheStatus | None = None
    coalesced: bool = False
    tag: str | None = None
    # A /v1/responses call: deployments that speak Responses are sent its native form.
    native: NativeCall | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    # The route counted this request against the caller's rpm already (a stored
    # prompt rendered before the call: LimitsStage.admit_request).
    requests_admitted: bool = False
    # Characters of answer (text, reasoning, tool arguments) streamed so far.
    streamed_chars: int = 0
    _charge: tuple[Usage, TokenCounts, float] | None = None

    def estimate_abandoned_usage(self) -> None:
        """A stream the client left before the upstream's usage arrived: estimate it.

        The upstream has read the prompt and written what was streamed (and
        bills both), so the call is charged the prompt's estimate and about a
        token for every four characters streamed; without this a client that
        closed the stream just before its end paid nothing and its budget never
        moved. Does nothing once a usage is known, so every stage that sees
        the stream end may call it.
        """
        if self.usage is not None or not isinstance(self.request, ChatCompletionRequest):
            return
        prompt = prompt_tokens(self.request)
        completion = (self.streamed_chars + 3) // 4
        self.usage = Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    def charge(self, pricing: PricingTable) -> tuple[TokenCounts, float]:
        """The call's token counts and USD cost so far (nothing for a cache hit),
        computed once per usage for the stages that settle and record it."""
        usage = self.usage
        if usage is None:
            return NO_TOKENS, 0.0
        charged = self._charge
        if charged is None or charged[0] is not usage:
            tokens = TokenCounts.of(usage)
            cost = 0.0 if self.cache == "hit" else pricing.cost(self.model, self.deployment, tokens)
            charged = self._charge = (usage, tokens, cost)
        return charged[1], charged[2]

    @property
    def model(self) -> str:
        """The model name the client asked for (an alias or group name)."""
        return self.request.model

    @property
    def stream(self) -> bool:
        return isinstance(self.request, ChatCompletionRequest) and self.request.stream


class Stage(Protocol):
    async def __call__(self, ctx: CallContext, call_next: Next) -> Result: ...


def chain(stages: Sequence[Stage], terminal: Next, *, tracer: Tracer | None = None) -> Next:
    """Compose ``stages`` (outermost first) around ``terminal``, once.

    A ``tracer`` wraps the whole chain, each stage (named by :func:`stage_name`)
    and the terminal call (``route``); without one, nothing is wrapped.
    """
    if tracer is None:
        handler = terminal
        for stage in reversed(stages):
            handler = _bind(stage, handler)
        return handler
    handler = tracer.stage("route", terminal)
    for stage in reversed(stages):
        handler = tracer.stage(stage_name(stage), _bind(stage, handler))
    return tracer.request(handler)


def stage_name(stage: Stage) -> str:
    """A stage's name in traces: its class's, snake case, less "Stage"
    (``AuthStage`` is ``auth``, ``ExactCache`` is ``exact_cache``)."""
    name = type(stage).__name__.removesuffix("Stage") or type(stage).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _bind(stage: Stage, call_next: Next) -> Next:
    async def bound(ctx: CallContext) -> Result:
        return await stage(ctx, call_next)

    return bound
