"""The :class:`~gatehouse.privacy.service.Privacy` of a running server, and of
the command line (which reaches SQL, Redis and the files of the data
directory, but not a server's memory)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from gatehouse.core.config import Settings
from gatehouse.core.extras import has_extra
from gatehouse.core.ids import Clock
from gatehouse.core.pseudonyms import Pseudonyms, subject_tag
from gatehouse.gateway.cache import ExactCache, RedisStore, SemanticCache
from gatehouse.gateway.governance import Governance
from gatehouse.gateway.pipeline import Stage
from gatehouse.privacy.service import Collections, Privacy, SubjectCache
from gatehouse.privacy.sql import UserDataStore
from gatehouse.store.database import Database
from gatehouse.store.ledger import LedgerStore
from gatehouse.store.outbox import Outbox
from gatehouse.store.shipper import Shipper

MEMORY_CACHE_NOTE = (
    "in-memory response caches of running servers (cache.backend: memory): this "
    "process cannot reach them; their entries expire after cache.ttl_seconds, or "
    "run DELETE /admin/privacy/users/{user} on each replica"
)


class CatalogCollections:
    """The RAG collections under ``root``, as privacy sees them: owners and deletion."""

    def __init__(self, root: Path, settings: Settings) -> None:
        from gatehouse.rag.catalog import Catalog
        from gatehouse.rag.vector_backends import vector_backend

        self._catalog = Catalog(root, vectors=vector_backend(settings.rag))

    def owned_by_keys(self, key_ids: Sequence[str]) -> list[str]:
        wanted = set(key_ids)
        return sorted(
            info.name
            for info in self._catalog.collections()
            if info.owner is not None and info.owner.kind == "key" and info.owner.id in wanted
        )

    def delete(self, name: str) -> None:
        self._catalog.delete(name)


class StoreCache:
    """A cache store reached directly (Redis from the command line)."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store

    async def purge_subject(self, user: str) -> int:
        return len(await self._store.purge(subject_tag(user)))


def collections_for(settings: Settings) -> Collections | None:
    root = settings.data_dir / "rag"
    if not root.is_dir() or not has_extra("rag"):
        return None
    return CatalogCollections(root, settings)


def server_privacy(
    settings: Settings,
    governance: Governance,
    stages: Sequence[Stage],
    collections: Collections | None,
    *,
    clock: Clock,
) -> Privacy:
    """Privacy as a server runs it: its own caches (semantic first: it shares the
    exact cache's store and must drop its vectors too), its outbox."""
    caches: list[tuple[str, SubjectCache]] = [
        ("semantic", stage) for stage in stages if isinstance(stage, SemanticCache)
    ]
    caches += [("exact", stage) for stage in stages if isinstance(stage, ExactCache)]
    return Privacy(
        UserDataStore(governance.database, governance.pseudonyms),
        governance.ledger.rollups,
        clock=clock,
        caches=caches,
        collections=collections,
        drain=governance.shipper.drain,
        refresh=governance.directory.refresh,
        not_reachable=(
            ["in-memory response caches of other replicas"]
            if settings.cache.backend == "memory" and caches
            else []
        ),
    )


@contextlib.asynccontextmanager
async def cli_privacy(settings: Settings, *, clock: Clock) -> AsyncIterator[Privacy]:
    """Privacy from the command line: the configured database, the outbox file
    of this data directory (shipped first), Redis caches when configured, and
    the RAG collections on disk."""
    database = Database.configured(settings)
    pseudonyms = Pseudonyms(settings.privacy.pseudonym_secret)
    ledger = LedgerStore(database, pseudonyms=pseudonyms)
    cache = settings.cache
    caches: list[tuple[str, SubjectCache]] = []
    not_reachable: list[str] = []
    redis: RedisStore | None = None
    if cache.enabled or cache.semantic.groups:
        if cache.backend == "redis":
            redis = RedisStore.from_url(cache.redis_url)
            caches.append(("redis", StoreCache(redis)))
        else:
            not_reachable.append(MEMORY_CACHE_NOTE)
    outbox: Outbox | None = None
    path = settings.data_dir / "outbox.db"
    try:
        await database.open(upgrade=settings.store.auto_upgrade)
        drain = None
        if path.exists():
            outbox = Outbox(path)
            await asyncio.to_thread(outbox.open)
            store = settings.store
            shipper = Shipper(
                outbox,
                ledger,
                interval=store.ship_interval_seconds,
                batch_size=store.ship_batch_size,
            )
            drain = shipper.drain
        yield Privacy(
            UserDataStore(database, pseudonyms),
            ledger.rollups,
            clock=clock,
            caches=caches,
            collections=collections_for(settings),
            drain=drain,
            not_reachable=not_reachable,
        )
    finally:
        if outbox is not None:
            await asyncio.to_thread(outbox.close)
        if redis is not None:
            await redis.close()
        await database.close()
