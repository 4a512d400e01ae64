"""What the gateway reports as requests pass, for metrics.

A Protocol so the gateway needs no metrics library: the server wires in an
implementation (``gatehouse.observability.Metrics``); tests can pass a recorder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Protocol

from gatehouse.core.errors import GatehouseError
from gatehouse.core.types import ChatCompletionChunk
from gatehouse.gateway.pipeline import CallContext, Next, Result


class Observer(Protocol):
    def request_done(
        self, endpoint: str, model: str, status: int, seconds: float, ttft: float | None
    ) -> None: ...

    def attempt(self, deployment: str, outcome: str) -> None: ...

    def admission_wait(self, deployment: str, seconds: float) -> None: ...


class NullObserver:
    def request_done(
        self, endpoint: str, model: str, status: int, seconds: float, ttft: float | None
    ) -> None:
        return None

    def attempt(self, deployment: str, outcome: str) -> None:
        return None

    def admission_wait(self, deployment: str, seconds: float) -> None:
        return None


class ObserveStage:
    """Outermost stage: one ``request_done`` per call, after the last streamed byte."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    async def __call__(self, ctx: CallContext, call_next: Next) -> Result:
        try:
            result = await call_next(ctx)
        except GatehouseError as exc:
            self._done(ctx, exc.http_status)
            raise
        except Exception:
            self._done(ctx, 500)
            raise
        if isinstance(result, AsyncIterator):
            return self._watch(ctx, result)
        self._done(ctx, 200)
        return result

    async def _watch(
        self, ctx: CallContext, chunks: AsyncIterator[ChatCompletionChunk]
    ) -> AsyncIterator[ChatCompletionChunk]:
        status = 200
        try:
            async for chunk in chunks:
                yield chunk
        except GatehouseError as exc:
            status = exc.http_status
            raise
        except (GeneratorExit, asyncio.CancelledError):
            status = 499  # the client went away (nginx's convention)
            raise
        except Exception:
            status = 500
            raise
        finally:
            self._done(ctx, status)

    def _done(self, ctx: CallContext, status: int) -> None:
        now = time.monotonic()
        ttft = None if ctx.first_token_at is None else ctx.first_token_at - ctx.started_at
        self._observer.request_done(ctx.endpoint, ctx.model, status, now - ctx.started_at, ttft)
