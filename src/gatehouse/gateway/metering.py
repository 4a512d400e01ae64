"""Metering: one usage event per request, durably in the outbox before the response ends.

A JSON response is returned only after its event is committed to the local
outbox; a stream's event is committed before its last chunk reaches the
server, so the client's ``[DONE]`` implies a durable record. Rejections
(limits, budgets, upstream errors) are recorded too, with their status;
requests that fail authentication are not (no principal to charge, and
recording them would let anyone fill the ledger).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from gatehouse.catalog import PricingTable
from gatehouse.core.errors import AuthenticationError, GatehouseError
from gatehouse.core.ids import Clock, IdSequence
from gatehouse.core.pseudonyms import Pseudonyms
from gatehouse.core.records import guard_text
from gatehouse.core.types import ChatCompletionChunk
from gatehouse.gateway.pipeline import CallContext, ChatStream, Next, Result
from gatehouse.store.outbox import Outbox

log = logging.getLogger("gatehouse.metering")

OK = "ok"


class MeteringStage:
    def __init__(
        self,
        outbox: Outbox,
        pricing: PricingTable,
        *,
        clock: Clock,
        pseudonyms: Pseudonyms | None = None,
    ) -> None:
        self._outbox = outbox
        self._pricing = pricing
        self._clock = clock
        # User ids are written as pseudonyms when privacy.pseudonym_secret is set.
        self._pseudonyms = pseudonyms or Pseudonyms(None)
        self._ids = IdSequence("evt")

    async def __call__(self, ctx: CallContext, call_next: Next) -> Result:
        if ctx.principal is None or ctx.principal.kind == "local":
            return await call_next(ctx)
        try:
            result = await call_next(ctx)
        except AuthenticationError:
            raise
        except GatehouseError as exc:
            await self._outbox.append(
                self.event(ctx, exc.error_code or exc.type, exc.http_status, exc)
            )
            raise
        except Exception as exc:
            await self._outbox.append(self.event(ctx, "internal_error", 500, exc))
            raise
        if isinstance(result, AsyncIterator):
            return self._metered(ctx, result)
        await self._outbox.append(self.event(ctx, OK, 200, None))
        return result

    async def _metered(
        self, ctx: CallContext, chunks: AsyncIterator[ChatCompletionChunk]
    ) -> ChatStream:
        try:
            async for chunk in chunks:
                yield chunk
        except GatehouseError as exc:
            await self._outbox.append(
                self.event(ctx, exc.error_code or exc.type, exc.http_status, exc)
            )
            raise
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away mid-stream: record what was used without
            # waiting (nothing can be awaited safely while being closed).
            ctx.estimate_abandoned_usage()
            self._outbox.submit(self.event(ctx, "client_closed", 499, None))
            raise
        except Exception as exc:
            await self._outbox.append(self.event(ctx, "internal_error", 500, exc))
            raise
        await self._outbox.append(self.event(ctx, OK, 200, None))

    def event(
        self, ctx: CallContext, status: str, http_status: int, error: BaseException | None
    ) -> dict[str, Any]:
        """The call's :class:`UsageEvent`, as the plain row the outbox stores.

        Built directly rather than through the model: this runs once per
        request, and a pydantic model of 24 fields costs more to build and
        serialise than everything else metering does."""
        principal = ctx.principal
        assert principal is not None
        tokens, cost = ctx.charge(self._pricing)
        message = None
        if error is not None:
            message = error.message if isinstance(error, GatehouseError) else type(error).__name__
        started = ctx.started_at
        return {
            "id": self._ids.next(),
            "request_id": ctx.request_id,
            "created_at": self._clock(),
            "principal": self._pseudonyms.principal(principal.id),
            "key_id": principal.key_id,
            "user": self._pseudonyms.user(principal.user),
            "team": principal.team,
            "org": principal.org,
            "endpoint": ctx.endpoint,
            "tag": ctx.tag,
            "model": ctx.model,
            "deployment": ctx.deployment,
            "status": status,
            "http_status": http_status,
            "prompt_tokens": tokens.prompt,
            "completion_tokens": tokens.completion,
            "cached_tokens": tokens.cached,
            "cache_write_tokens": tokens.cache_write,
            "reasoning_tokens": tokens.reasoning,
            "cost_usd": cost,
            "latency_ms": (time.monotonic() - started) * 1000.0,
            "ttft_ms": None
            if ctx.first_token_at is None
            else (ctx.first_token_at - started) * 1000,
            "cache_hit": ctx.cache == "hit",
            "stream": ctx.stream,
            "error": message[:500] if message else None,
            "guard": guard_text(ctx.guard),
        }
