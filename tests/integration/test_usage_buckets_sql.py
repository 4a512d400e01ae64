"""Usage buckets in the ledger on both SQL backends: stored per event, summed by the
daily rollups, reported by spend; a ledger from before migration 0006 upgraded in
place; an outbox event written by an older release shipped with empty buckets."""

from __future__ import annotations

import random
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, func, select, text

from gatehouse.core.records import UsageEvent
from gatehouse.store import schema
from gatehouse.store.database import MIGRATIONS, Database
from gatehouse.store.ledger import EventQuery, LedgerStore
from gatehouse.store.outbox import Outbox
from gatehouse.store.rollups import DAY, TOKEN_BUCKETS
from gatehouse.store.shipper import Shipper

from .sql_backends import OnPostgres, OnSQLite

MIDNIGHT = 1_779_926_400.0  # 2026-05-28T00:00:00Z


def bucket_events(seed: int, count: int) -> list[UsageEvent]:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        cached, written, reasoning = rng.randrange(50), rng.randrange(50), rng.randrange(30)
        events.append(
            UsageEvent(
                id=f"ub-{seed}-{n:04d}",
                request_id=f"req-{seed}-{n}",
                created_at=MIDNIGHT + rng.randrange(int(2 * DAY)),
                principal="key:k",
                key_id="k",
                team=rng.choice(["red", "blue"]),
                endpoint="chat",
                model="m",
                status="ok",
                http_status=200,
                prompt_tokens=cached + written + rng.randrange(500),
                completion_tokens=reasoning + rng.randrange(300),
                cached_tokens=cached,
                cache_write_tokens=written,
                reasoning_tokens=reasoning,
                cost_usd=rng.randrange(10_000) / 1024,
                latency_ms=1.0,
            )
        )
    return events


def sums(events: list[UsageEvent], team: str) -> tuple[int, ...]:
    return tuple(sum(getattr(e, name) for e in events if e.team == team) for name in TOKEN_BUCKETS)


def _migrate(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    if revision == "head":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


class UsageBucketsConformance:
    async def test_every_bucket_is_stored_rolled_up_and_reported(self, database: Database) -> None:
        ledger = LedgerStore(database)
        events = bucket_events(1, 120)
        await ledger.insert(events[:80])
        await ledger.rollups.roll_up_all(now=MIDNIGHT + 3 * DAY, batch_size=25)
        await ledger.insert(events[80:])  # pending: spend reads them raw
        rows = {r.group: r for r in await ledger.spend("team")}
        for team in ("red", "blue"):
            row = rows[team]
            reported = tuple(getattr(row, name) for name in TOKEN_BUCKETS)
            assert reported == sums(events, team)
        # The rollup table's own columns, bucket by bucket.
        async with database.engine.connect() as conn:
            rolled = (
                await conn.execute(
                    select(*(func.sum(schema.rollups.c[name]) for name in TOKEN_BUCKETS))
                )
            ).one()
        assert tuple(rolled) == tuple(
            sum(getattr(e, name) for e in events[:80]) for name in TOKEN_BUCKETS
        )
        # The request log returns each event's buckets as recorded.
        page, _ = await ledger.page(EventQuery(request_id="req-1-7"), limit=5)
        assert page == [events[7]]
        assert page[0].public()["cache_write_tokens"] == events[7].cache_write_tokens

    async def test_a_ledger_from_before_the_buckets_is_upgraded_in_place(
        self, database: Database
    ) -> None:
        async with database.engine.begin() as conn:
            await conn.run_sync(_migrate, "0005")
            await conn.execute(
                text(
                    "INSERT INTO ledger_events (id, request_id, created_at, principal, endpoint,"
                    " model, status, http_status, prompt_tokens, completion_tokens,"
                    " cached_tokens, cost_usd, latency_ms, cache_hit, stream)"
                    " VALUES ('old-1', 'req-old', :at, 'master', 'chat', 'm', 'ok', 200,"
                    " 40, 9, 4, 0.5, 2.0, false, false)"
                ),
                {"at": MIDNIGHT},
            )
        await database.open()  # what the next start does: migrates to head
        ledger = LedgerStore(database)
        [old] = await ledger.events()
        assert (old.prompt_tokens, old.cached_tokens) == (40, 4)
        assert (old.cache_write_tokens, old.reasoning_tokens) == (0, 0)
        await ledger.insert(bucket_events(2, 3))
        assert await ledger.rollups.roll_up_all(now=MIDNIGHT + 3 * DAY, batch_size=10) == 4

    async def test_an_outbox_event_from_an_older_release_ships_with_empty_buckets(
        self, database: Database, tmp_path: Path
    ) -> None:
        ledger = LedgerStore(database)
        outbox = Outbox(tmp_path / "outbox.db")
        outbox.open()
        older = bucket_events(3, 1)[0].model_dump()
        del older["cache_write_tokens"], older["reasoning_tokens"]
        await outbox.append(older)
        await Shipper(outbox, ledger, interval=0.01, batch_size=10).drain()
        [shipped] = await ledger.events()
        assert (shipped.id, shipped.cached_tokens) == (older["id"], older["cached_tokens"])
        assert (shipped.cache_write_tokens, shipped.reasoning_tokens) == (0, 0)
        assert await outbox.count() == 0
        outbox.close()


class TestSQLite(OnSQLite, UsageBucketsConformance):
    pass


class TestPostgres(OnPostgres, UsageBucketsConformance):
    pass
