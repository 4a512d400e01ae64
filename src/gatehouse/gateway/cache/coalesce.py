"""Request coalescing: identical requests in flight together make one upstream call.

The first caller (the leader) starts a *flight*: a task that makes the call
once. Callers that arrive with the same key while it is in the air join it.
A completion is shared as is. A stream is fanned out: the flight records each
chunk as it arrives and every subscriber reads the record from the start at
its own pace, so a late joiner misses nothing and a slow one holds no one up.

The flight belongs to no caller: when the leader goes away the others keep
their answer; only when every caller is gone is the upstream call cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.gateway.cache.entries import is_usage_only, usage_chunk
from gatehouse.gateway.cache.keys import Scope, cache_key, fingerprint, is_deterministic, scope_id
from gatehouse.gateway.pipeline import CallContext, Next, Result

COALESCED_HEADER = "x-gatehouse-coalesced"


@dataclass(eq=False)
class _Flight:
    leader: CallContext
    task: asyncio.Task[None] | None = None
    completion: ChatCompletion | None = None
    chunks: list[ChatCompletionChunk] = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None
    waiters: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self) -> None:
        # Wake everyone waiting, then arm a fresh event for the next change.
        self.changed.set()
        self.changed = asyncio.Event()


class Coalescer:
    """The coalescing stage. Only deterministic requests by default: two
    callers asking for independent samples must not get the same one."""

    def __init__(self, *, scope: Scope = "principal", only_deterministic: bool = True) -> None:
        self.scope: Scope = scope
        self.only_deterministic = only_deterministic
        self._flights: dict[str, _Flight] = {}

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    async def __call__(self, ctx: CallContext, call_next: Next) -> Result:
        request = ctx.request
        if not isinstance(request, ChatCompletionRequest) or (
            self.only_deterministic and not is_deterministic(request)
        ):
            return await call_next(ctx)
        # Streamed and non-streamed calls fly separately: each shares its own form.
        kind = "coalesce-stream" if request.stream else "coalesce"
        key = cache_key(
            ctx.model, fingerprint(request), scope_id(ctx.principal, self.scope), kind=kind
        )
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(leader=ctx)
            self._flights[key] = flight
            flight.task = asyncio.create_task(self._fly(key, flight, call_next))
        else:
            ctx.coalesced = True
            ctx.response_headers[COALESCED_HEADER] = "1"
        # Counted now, not when the caller starts reading, so that a caller
        # leaving early cannot cancel a flight another has yet to read.
        flight.waiters += 1
        if request.stream:
            return self._subscribe(ctx, request, flight)
        return await self._await_completion(ctx, flight)

    async def _fly(self, key: str, flight: _Flight, call_next: Next) -> None:
        try:
            result = await call_next(flight.leader)
            if isinstance(result, ChatCompletion):
                flight.completion = result
            elif isinstance(result, AsyncIterator):
                async for chunk in result:
                    flight.chunks.append(chunk)
                    flight.publish()
        except BaseException as exc:  # handed to every caller, cancellation included
            flight.error = exc
        finally:
            flight.done = True
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.publish()

    async def _await_completion(self, ctx: CallContext, flight: _Flight) -> ChatCompletion:
        try:
            while not flight.done:
                await flight.changed.wait()
        finally:
            flight.waiters -= 1
            _abandon_if_alone(flight)
        if flight.error is not None:
            raise flight.error
        assert flight.completion is not None
        _copy_outcome(flight.leader, ctx)
        return flight.completion

    async def _subscribe(
        self, ctx: CallContext, request: ChatCompletionRequest, flight: _Flight
    ) -> AsyncIterator[ChatCompletionChunk]:
        wants_usage = request.include_usage()
        sent_usage = False
        try:
            index = 0
            while True:
                if index < len(flight.chunks):
                    chunk = flight.chunks[index]
                    index += 1
                    if is_usage_only(chunk):
                        if not wants_usage:
                            continue
                        sent_usage = True
                    yield chunk
                elif flight.done:
                    break
                else:
                    await flight.changed.wait()
        finally:
            flight.waiters -= 1
            _abandon_if_alone(flight)
        if flight.error is not None:
            raise flight.error
        usage = flight.leader.usage
        _copy_outcome(flight.leader, ctx)
        # The leader may not have asked for usage while this caller did.
        if wants_usage and not sent_usage and usage is not None and flight.chunks:
            yield usage_chunk(flight.chunks[-1], usage)


def _abandon_if_alone(flight: _Flight) -> None:
    if flight.waiters == 0 and not flight.done and flight.task is not None:
        flight.task.cancel()


def _copy_outcome(leader: CallContext, ctx: CallContext) -> None:
    if ctx is leader:
        return
    ctx.deployment = leader.deployment
    ctx.usage = leader.usage
    ctx.first_token_at = leader.first_token_at
