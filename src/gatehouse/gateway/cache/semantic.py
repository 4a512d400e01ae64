"""The semantic cache stage: answers a paraphrase of a question already answered.

Only the last user turn is compared by meaning. Everything else, the system
prompt, the earlier turns and every sampling parameter, goes into an exact
*context digest* that partitions the index: two conversations that differ
anywhere but in the wording of their last question never share an entry.
Within a partition the nearest stored question by cosine similarity answers
when it clears the threshold, which ``bench/semantic_cache.py`` measures.
Opt-in per model group.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass

import numpy as np
import orjson

from gatehouse.core.errors import GatehouseError
from gatehouse.core.pseudonyms import subject_tag
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.gateway.cache.entries import encode_completion, encode_stream, is_usage_only
from gatehouse.gateway.cache.exact import answer_from_entry
from gatehouse.gateway.cache.keys import (
    Scope,
    cache_key,
    canonical_fields,
    owner_tags,
    scope_id,
)
from gatehouse.gateway.cache.policy import decide, mark
from gatehouse.gateway.cache.store import CacheStore, CacheUnavailable
from gatehouse.gateway.pipeline import CallContext, Next, Result

log = logging.getLogger("gatehouse.cache")

Embed = Callable[[str], Awaitable[list[float]]]
Vector = np.ndarray


def split_last_turn(request: ChatCompletionRequest) -> tuple[bytes, str] | None:
    """(context digest, last user turn), or ``None`` when the request does not
    end with a plain-text user turn (a tool result, an image: not comparable)."""
    last = request.messages[-1]
    if last.role != "user" or last.has_images():
        return None
    data = canonical_fields(request)
    data["messages"] = data["messages"][:-1]
    data["last_turn_name"] = last.name
    body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=16).digest(), last.text()


def unit(vector: list[float]) -> Vector:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm > 0 else array


class SemanticIndex:
    """Unit vectors per partition, bounded overall with least-recently-added eviction."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._order: OrderedDict[str, str] = OrderedDict()  # entry key -> partition
        self._partitions: dict[str, dict[str, Vector]] = {}

    def __len__(self) -> int:
        return len(self._order)

    def add(self, partition: str, entry_key: str, vector: Vector) -> None:
        self.remove(entry_key)
        self._partitions.setdefault(partition, {})[entry_key] = vector
        self._order[entry_key] = partition
        while len(self._order) > self.max_entries:
            self.remove(next(iter(self._order)))

    def remove(self, entry_key: str) -> None:
        partition = self._order.pop(entry_key, None)
        if partition is None:
            return
        members = self._partitions[partition]
        del members[entry_key]
        if not members:
            del self._partitions[partition]

    def nearest(self, partition: str, vector: Vector) -> tuple[str, float] | None:
        members = self._partitions.get(partition)
        if not members:
            return None
        keys = list(members)
        scores = np.stack([members[k] for k in keys]) @ vector
        best = int(np.argmax(scores))
        return keys[best], float(scores[best])


class SemanticCache:
    """Looks up by meaning for the opted-in model groups; stores in ``store``."""

    def __init__(
        self,
        store: CacheStore,
        embed: Embed,
        *,
        groups: Collection[str],
        threshold: float,
        max_entries: int,
        ttl: float,
        scope: Scope = "principal",
        only_deterministic: bool = True,
        max_ttl: float | None = None,
    ) -> None:
        self.store = store
        self.max_ttl = max_ttl  # retention.cache_entries_seconds
        self.embed = embed
        self.groups = frozenset(groups)
        self.threshold = threshold
        self.index = SemanticIndex(max_entries)
        self.ttl = ttl
        self.scope: Scope = scope
        self.only_deterministic = only_deterministic

    async def __call__(self, ctx: CallContext, call_next: Next) -> Result:
        request = ctx.request
        if not isinstance(request, ChatCompletionRequest) or ctx.model not in self.groups:
            return await call_next(ctx)
        decision = decide(
            request, ctx.headers, default_ttl=self.ttl, only_deterministic=self.only_deterministic
        )
        parts = split_last_turn(request)
        if parts is None or not (decision.lookup or decision.store):
            mark(ctx, "bypass")
            return await call_next(ctx)
        context, question = parts
        scope = scope_id(ctx.principal, self.scope)
        partition = cache_key(ctx.model, context, scope, decision.namespace, kind="semantic")
        vector = await self._embed(question)
        if vector is None:
            mark(ctx, "bypass")
            return await call_next(ctx)
        if decision.lookup:
            found = self.index.nearest(partition, vector)
            if found is not None and found[1] >= self.threshold:
                raw = await self._get(found[0])
                if raw is not None:
                    mark(ctx, "hit")
                    ctx.response_headers["x-gatehouse-cache-similarity"] = f"{found[1]:.4f}"
                    return answer_from_entry(ctx, request, raw)
                self.index.remove(found[0])  # expired or evicted from the store
        mark(ctx, "miss" if decision.lookup else "bypass")
        result = await call_next(ctx)
        if not decision.store:
            return result
        entry_key = cache_key(ctx.model, context + question.encode(), scope, partition, "sem-e")
        entry = _Entry(
            partition, entry_key, vector, decision.ttl, owner_tags(ctx.principal, request)
        )
        if isinstance(result, ChatCompletion):
            await self._set(entry, encode_completion(result))
            return result
        if isinstance(result, AsyncIterator):
            return self._record(ctx, result, entry)
        return result

    async def _record(
        self,
        ctx: CallContext,
        chunks: AsyncIterator[ChatCompletionChunk],
        entry: _Entry,
    ) -> AsyncIterator[ChatCompletionChunk]:
        seen: list[ChatCompletionChunk] = []
        async for chunk in chunks:
            if not is_usage_only(chunk):
                seen.append(chunk)
            yield chunk
        if seen:
            await self._set(entry, encode_stream(seen, ctx.usage))

    async def _embed(self, text: str) -> Vector | None:
        try:
            return unit(await self.embed(text))
        except GatehouseError as exc:
            log.warning("semantic cache could not embed the question (%s); skipping it", exc)
            return None

    async def _get(self, key: str) -> bytes | None:
        try:
            return await self.store.get(key)
        except CacheUnavailable as exc:
            log.warning("%s; answering as a miss", exc)
            return None

    async def _set(self, entry: _Entry, value: bytes) -> None:
        ttl = entry.ttl if self.max_ttl is None else min(entry.ttl, self.max_ttl)
        try:
            await self.store.set(entry.key, value, ttl)
            for owner in entry.owners:
                await self.store.tag(owner, entry.key, ttl)
        except CacheUnavailable as exc:
            log.warning("%s; the answer was not cached", exc)
            return
        self.index.add(entry.partition, entry.key, entry.vector)

    async def purge_subject(self, user: str) -> int:
        """Delete the entries holding ``user``'s data, their vectors included
        (per-user deletion); how many. Raises :class:`CacheUnavailable` when
        the store cannot be reached."""
        keys = await self.store.purge(subject_tag(user))
        for key in keys:
            self.index.remove(key)
        return len(keys)


@dataclass(frozen=True, slots=True)
class _Entry:
    """Where a new answer goes: its partition, key and vector, for how long, and
    whose data it holds (subject tags)."""

    partition: str
    key: str
    vector: Vector
    ttl: float
    owners: list[str]
