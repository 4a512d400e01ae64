"""What the gateway reports as requests pass, for metrics and the access log.

A Protocol so the gateway needs no metrics or logging library: the server
wires in implementations (``gatehouse.observability.Metrics``, the access
log); tests can pass a recorder. :class:`ObserveStage`, the outermost stage,
reports each finished request as one :class:`RequestRecord`; the router
reports each upstream attempt, error, retry, fallback and admission wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from gatehouse.catalog import PricingTable
from gatehouse.core.errors import ErrorType, GatehouseError, error_type
from gatehouse.core.observation import FinishedRequestsOnly, RequestRecord
from gatehouse.core.types import ChatCompletionChunk
from gatehouse.gateway import body_log
from gatehouse.gateway.pipeline import CallContext, Next, Result


class Observer(Protocol):
    def request_done(self, record: RequestRecord) -> None: ...

    def attempt(self, deployment: str, outcome: str) -> None: ...

    def upstream_error(self, group: str, deployment: str, kind: ErrorType) -> None: ...

    def retry(self, group: str) -> None: ...

    def fallback(self, group: str) -> None: ...

    def admission_wait(self, deployment: str, seconds: float) -> None: ...


class NullObserver(FinishedRequestsOnly):
    def request_done(self, record: RequestRecord) -> None:
        return None


class Observers:
    """Several observers as one: each report goes to every one, in order."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self._observers = tuple(observers)

    def request_done(self, record: RequestRecord) -> None:
        for observer in self._observers:
            observer.request_done(record)

    def attempt(self, deployment: str, outcome: str) -> None:
        for observer in self._observers:
            observer.attempt(deployment, outcome)

    def upstream_error(self, group: str, deployment: str, kind: ErrorType) -> None:
        for observer in self._observers:
            observer.upstream_error(group, deployment, kind)

    def retry(self, group: str) -> None:
        for observer in self._observers:
            observer.retry(group)

    def fallback(self, group: str) -> None:
        for observer in self._observers:
            observer.fallback(group)

    def admission_wait(self, deployment: str, seconds: float) -> None:
        for observer in self._observers:
            observer.admission_wait(deployment, seconds)


class ObserveStage:
    """Outermost stage: one ``request_done`` per call, after the last streamed byte.

    Tokens and cost come from :meth:`CallContext.charge` with the pricing the
    metering stage uses, so what is observed equals what the ledger records.
    With ``bodies`` (a length), the record also carries the request's and the
    answer's text, redacted (:mod:`gatehouse.gateway.body_log`); never otherwise.
    """

    def __init__(
        self, observer: Observer, pricing: PricingTable, *, bodies: int | None = None
    ) -> None:
        self._observer = observer
        self._pricing = pricing
        self._bodies = bodies

    async def __call__(self, ctx: CallContext, call_next: Next) -> Result:
        try:
            result = await call_next(ctx)
        except GatehouseError as exc:
            self._done(ctx, exc.http_status, exc)
            raise
        except Exception as exc:
            self._done(ctx, 500, exc)
            raise
        if isinstance(result, AsyncIterator):
            return self._watch(ctx, result)
        answer = None if self._bodies is None else body_log.answer_body(result, self._bodies)
        self._done(ctx, 200, None, answer)
        return result

    async def _watch(
        self, ctx: CallContext, chunks: AsyncIterator[ChatCompletionChunk]
    ) -> AsyncIterator[ChatCompletionChunk]:
        status = 200
        error: BaseException | None = None
        parts: list[str] | None = None if self._bodies is None else []
        try:
            async for chunk in chunks:
                if parts is not None:
                    body_log.streamed_text(chunk, parts)
                yield chunk
        except GatehouseError as exc:
            status, error = exc.http_status, exc
            raise
        except (GeneratorExit, asyncio.CancelledError):
            status = 499  # the client went away (nginx's convention)
            ctx.estimate_abandoned_usage()  # as metering will record it
            raise
        except Exception as exc:
            status, error = 500, exc
            raise
        finally:
            answer = None
            if parts is not None and self._bodies is not None:
                answer = body_log.body("".join(parts), self._bodies)
            self._done(ctx, status, error, answer)

    def _done(
        self, ctx: CallContext, status: int, error: BaseException | None, answer: str | None = None
    ) -> None:
        now = time.monotonic()
        started = ctx.started_at
        tokens, cost = ctx.charge(self._pricing)
        principal = ctx.principal
        code = None
        if error is not None:
            code = error.error_code if isinstance(error, GatehouseError) else "internal_error"
        self._observer.request_done(
            RequestRecord(
                request_id=ctx.request_id,
                endpoint=ctx.endpoint,
                model=ctx.model,
                group=ctx.group,
                deployment=ctx.deployment,
                principal=None if principal is None else principal.id,
                team=None if principal is None else principal.team,
                status=status,
                error_type=None if error is None else error_type(error),
                error_code=code,
                refusal=ctx.refusal,
                seconds=now - started,
                ttft=None if ctx.first_token_at is None else ctx.first_token_at - started,
                input_tokens=tokens.prompt,
                cached_tokens=tokens.cached,
                cache_write_tokens=tokens.cache_write,
                output_tokens=tokens.completion,
                reasoning_tokens=tokens.reasoning,
                cost_usd=cost,
                cache=ctx.cache,
                coalesced=ctx.coalesced,
                retries=ctx.retries,
                fallbacks=ctx.fallbacks,
                stream=ctx.stream,
                guard=ctx.guard,
                upstream=ctx.upstream_seconds,
                key_id=None if principal is None else principal.key_id,
                request_body=None
                if self._bodies is None
                else body_log.request_body(ctx.request, self._bodies),
                response_body=answer,
            )
        )
