"""Per-user export and erasure across every store gatehouse keeps.

:class:`Privacy` is what the admin API and ``gatehouse privacy`` call. An
export gathers the user's rows from SQL (:mod:`gatehouse.privacy.sql`) and
names the RAG collections owned by the user's keys. An erasure:

1. ships the usage events still in the local outbox and rolls the ledger up,
   so the events about to be deleted already count in the spend rollups;
2. deletes and anonymises the user's SQL rows, revokes their keys and writes
   the compliance entry (one transaction);
3. deletes the cache entries holding the user's data (exact and semantic
   caches, in process and in Redis), and the RAG collections owned by the
   user's keys.

Each step reports what it did; a store that cannot be reached is reported,
never skipped in silence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gatehouse.core.ids import Clock
from gatehouse.core.pseudonyms import subject_tag
from gatehouse.core.records import iso
from gatehouse.privacy.sql import ErasedCounts, UserDataStore, counts_dict
from gatehouse.store.rollups import Rollups

log = logging.getLogger("gatehouse.privacy")

ROLL_UP_BATCH = 5000


class SubjectCache(Protocol):
    """A cache that can drop a user's entries (``ExactCache``, ``SemanticCache``,
    or a bare store reached from the command line)."""

    async def purge_subject(self, user: str) -> int: ...


class Collections(Protocol):
    """The RAG collections: which the given keys own, and deleting one."""

    def owned_by_keys(self, key_ids: Sequence[str]) -> list[str]: ...

    def delete(self, name: str) -> None: ...


class Step(Protocol):
    async def __call__(self) -> None: ...


@dataclass
class DeletionReport:
    user_tag: str
    sql: ErasedCounts
    cache_entries: int = 0
    collections: list[str] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=list)  # stores that could not be reached

    def public(self) -> dict[str, Any]:
        return {
            "user_tag": self.user_tag,
            "deleted": {
                **counts_dict(self.sql),
                "cache_entries": self.cache_entries,
                "collections": self.collections,
            },
            "not_reached": self.not_reached,
        }


class Privacy:
    def __init__(
        self,
        store: UserDataStore,
        rollups: Rollups,
        *,
        clock: Clock,
        caches: Sequence[tuple[str, SubjectCache]] = (),
        collections: Collections | None = None,
        drain: Step | None = None,
        refresh: Step | None = None,
        not_reachable: Sequence[str] = (),
    ) -> None:
        """``caches``: named caches to purge (semantic before exact when they share
        a store, so its vectors go too); ``drain`` ships the local outbox;
        ``refresh`` drops this process's cached keys (the user's are revoked;
        other replicas see the revision move); ``not_reachable``: stores this
        process cannot reach, named in reports."""
        self._store = store
        self._rollups = rollups
        self._clock = clock
        self._caches = list(caches)
        self._collections = collections
        self._drain = drain
        self._refresh = refresh
        self._not_reachable = list(not_reachable)

    async def export(self, user: str, *, actor: str) -> dict[str, Any]:
        """Everything kept about ``user``, as JSON-ready data; audited."""
        if self._drain is not None:
            # The requests this process has just served are in the export too.
            await self._drain()
        rows = await self._store.find(user)
        collections = self._owned_collections([key.id for key in rows.keys])
        data: dict[str, Any] = {
            "user": user,
            "exported_at": iso(self._clock()),
            "usage_events": [event.public() for event in rows.events],
            "rollups": rows.rollups,
            "responses": rows.responses,
            "keys": [key.public() for key in rows.keys],
            "user_record": rows.subject,
            "audit": [entry.public() for entry in rows.audit],
            "prompt_templates": rows.prompt_templates,
            "rag_collections": collections,
            "not_exported": [
                "cache entries (derived from requests already listed; deleted with the user)",
                *self._not_reachable,
            ],
        }
        counts = {
            "events": len(rows.events),
            "rollups": len(rows.rollups),
            "responses": len(rows.responses),
            "keys": len(rows.keys),
            "audit": len(rows.audit),
            "prompt_templates": len(rows.prompt_templates),
            "collections": len(collections),
        }
        await self._store.record_export(user, actor=actor, at=self._clock(), counts=counts)
        return data

    async def delete(self, user: str, *, actor: str) -> DeletionReport:
        """Erase ``user`` from every store this process reaches (module docstring)."""
        if self._drain is not None:
            await self._drain()
        await self._rollups.roll_up_all(now=self._clock(), batch_size=ROLL_UP_BATCH)
        keys = await self._store.key_ids(user)
        counts = await self._store.erase(user, actor=actor, at=self._clock())
        if self._refresh is not None:
            await self._refresh()
        report = DeletionReport(subject_tag(user), counts, not_reached=list(self._not_reachable))
        for name, cache in self._caches:
            try:
                report.cache_entries += await cache.purge_subject(user)
            except Exception as exc:  # a cache store that is down: say so
                log.warning("privacy delete: cache %s not reached: %s", name, exc)
                report.not_reached.append(f"cache {name}: {type(exc).__name__}")
        for name in self._owned_collections(keys):
            assert self._collections is not None
            self._collections.delete(name)
            report.collections.append(name)
        return report

    def _owned_collections(self, key_ids: list[str]) -> list[str]:
        if self._collections is None or not key_ids:
            return []
        return self._collections.owned_by_keys(key_ids)
