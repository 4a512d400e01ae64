"""Stored responses and response-cache entries as retention classes."""

from __future__ import annotations

from pathlib import Path

from gatehouse.core.config import RetentionConfig
from gatehouse.gateway.cache import ExactCache, MemoryStore
from gatehouse.store.database import Database, database_url
from gatehouse.store.ledger import LedgerStore
from gatehouse.store.responses import SQLResponseStore, StoredResponse
from gatehouse.store.retention import RESPONSES_CLASS, Retention

from .cache_fakes import ALICE, CountingChat, context, gateway
from .governed import FakeClock

DAY = 86_400.0
DET = {"temperature": 0}


def _response(response_id: str, created_at: float) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        owner="team:red",
        created_at=created_at,
        model="default",
        status="completed",
        previous_response_id=None,
        response={"id": response_id},
        input_items=[],
    )


async def test_stored_responses_past_their_days_are_purged(tmp_path: Path) -> None:
    database = Database(database_url(None, tmp_path))
    await database.open()
    try:
        clock = FakeClock()
        store = SQLResponseStore(database)
        await store.put(_response("resp_old", clock() - 10 * DAY))
        await store.put(_response("resp_new", clock() - 60))
        config = RetentionConfig(responses_days=7, request_events_days=None, rollups_days=None)
        retention = Retention(database, config, clock=clock, rollups=LedgerStore(database).rollups)
        report = await retention.run_once()
        assert report.responses_deleted == 1
        assert await store.get("resp_old", "team:red") is None
        assert await store.get("resp_new", "team:red") is not None
        assert await LedgerStore(database).purged_before(RESPONSES_CLASS) > 0
        # Kept forever by default.
        keep = Retention(
            database, RetentionConfig(), clock=clock, rollups=LedgerStore(database).rollups
        )
        assert (await keep.run_once()).responses_deleted == 0
    finally:
        await database.close()


async def test_no_cache_entry_outlives_the_retention_cap() -> None:
    upstream = CountingChat()
    now = [0.0]
    store = MemoryStore(max_entries=10, max_bytes=100_000, clock=lambda: now[0])
    gw = gateway(upstream, [ExactCache(store, ttl=3600, max_ttl=30)])
    await gw.handle(context({**DET, "cache": {"ttl": 86_400}}, principal=ALICE))
    now[0] = 29
    hit = context(DET, principal=ALICE)
    await gw.handle(hit)
    assert (hit.cache, upstream.calls) == ("hit", 1)
    now[0] = 31  # past the cap, though the request asked for a day
    missed = context(DET, principal=ALICE)
    await gw.handle(missed)
    assert (missed.cache, upstream.calls) == ("miss", 2)
