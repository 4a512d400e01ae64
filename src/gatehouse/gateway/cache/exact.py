"""The exact cache stage: answers a repeated request without an upstream call."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from gatehouse.core.pseudonyms import subject_tag
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.gateway.cache.entries import (
    decode_completion,
    decode_stream,
    encode_completion,
    encode_stream,
    is_usage_only,
    replay,
)
from gatehouse.gateway.cache.keys import Scope, cache_key, fingerprint, owner_tags, scope_id
from gatehouse.gateway.cache.policy import decide, mark
from gatehouse.gateway.cache.store import CacheStore, CacheUnavailable
from gatehouse.gateway.pipeline import CallContext, Next, Result

log = logging.getLogger("gatehouse.cache")


class ExactCache:
    """Looks a chat call up by its canonical key; stores what comes back.

    Streams are recorded as they pass and stored only when they end normally,
    so an aborted or failed stream never becomes an entry.
    """

    def __init__(
        self,
        store: CacheStore,
        *,
        ttl: float,
        scope: Scope = "principal",
        only_deterministic: bool = True,
        max_ttl: float | None = None,
    ) -> None:
        self.store = store
        self.ttl = ttl
        # retention.cache_entries_seconds: no entry lives longer, whatever is asked.
        self.max_ttl = max_ttl
        self.scope: Scope = scope
        self.only_deterministic = only_deterministic

    async def __call__(self, ctx: CallContext, call_next: Next) -> Result:
        request = ctx.request
        if not isinstance(request, ChatCompletionRequest):
            return await call_next(ctx)
        decision = decide(
            request, ctx.headers, default_ttl=self.ttl, only_deterministic=self.only_deterministic
        )
        if not decision.lookup and not decision.store:
            mark(ctx, "bypass")
            return await call_next(ctx)
        key = cache_key(
            ctx.model,
            fingerprint(request),
            scope_id(ctx.principal, self.scope),
            decision.namespace,
        )
        if decision.lookup:
            raw = await self._get(key)
            if raw is not None:
                mark(ctx, "hit")
                return answer_from_entry(ctx, request, raw)
        mark(ctx, "miss" if decision.lookup else "bypass")
        result = await call_next(ctx)
        if not decision.store:
            return result
        owners = owner_tags(ctx.principal, request)
        if isinstance(result, ChatCompletion):
            await self._set(key, encode_completion(result), decision.ttl, owners)
            return result
        if isinstance(result, AsyncIterator):
            return self._record(ctx, result, key, decision.ttl, owners)
        return result

    async def _record(
        self,
        ctx: CallContext,
        chunks: AsyncIterator[ChatCompletionChunk],
        key: str,
        ttl: float,
        owners: list[str],
    ) -> AsyncIterator[ChatCompletionChunk]:
        seen: list[ChatCompletionChunk] = []
        async for chunk in chunks:
            if not is_usage_only(chunk):
                seen.append(chunk)
            yield chunk
        # Reached only when the upstream stream ended cleanly.
        if seen:
            await self._set(key, encode_stream(seen, ctx.usage), ttl, owners)

    async def _get(self, key: str) -> bytes | None:
        try:
            return await self.store.get(key)
        except CacheUnavailable as exc:
            log.warning("%s; answering as a miss", exc)
            return None

    async def _set(self, key: str, value: bytes, ttl: float, owners: list[str]) -> None:
        if self.max_ttl is not None:
            ttl = min(ttl, self.max_ttl)
        try:
            await self.store.set(key, value, ttl)
            for owner in owners:
                await self.store.tag(owner, key, ttl)
        except CacheUnavailable as exc:
            log.warning("%s; the answer was not cached", exc)

    async def purge_subject(self, user: str) -> int:
        """Delete the entries holding ``user``'s data (per-user deletion); how many.
        Raises :class:`CacheUnavailable` when the store cannot be reached."""
        return len(await self.store.purge(subject_tag(user)))


def answer_from_entry(ctx: CallContext, request: ChatCompletionRequest, raw: bytes) -> Result:
    """A stored entry as the result the caller asked for: a completion or a stream."""
    if not request.stream:
        completion = decode_completion(raw)
        ctx.usage = completion.usage
        return completion
    chunks, usage = decode_stream(raw)
    ctx.usage = usage
    return replay(chunks, usage, include_usage=request.include_usage())
