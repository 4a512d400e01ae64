"""The request log, rollups and retention on both SQL backends.

Each backend subclasses :class:`RequestLogConformance` and provides
``database`` (and ``replica``: a second engine on the same database, as a
second server would hold), migrated exactly as a server start does.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from sqlalchemy import func, select

from gatehouse.core.config import RetentionConfig
from gatehouse.core.records import SubjectRecord, UsageEvent
from gatehouse.store import schema
from gatehouse.store.database import Database
from gatehouse.store.directory import DirectoryStore
from gatehouse.store.ledger import EventQuery, LedgerStore
from gatehouse.store.retention import Retention
from gatehouse.store.rollups import DAY, GROUP_COLUMNS, SPEND_GROUPS, Rollups, day_of

from .sql_backends import OnPostgres, OnSQLite

# 2026-05-28T00:00:00Z, a UTC midnight.
MIDNIGHT = 1_779_926_400.0
TEAMS = ["red", "blue", None]
KEYS = ["ka", "kb", "kc", None]
MODELS = ["m1", "m2"]
DEPLOYMENTS = ["m1#0", "m1#1", None]
STATUSES = ["ok", "ok", "ok", "rate_limit_exceeded", "upstream_error"]


def random_events(seed: int, count: int, *, start: float, days: int) -> list[UsageEvent]:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        key = rng.choice(KEYS)
        events.append(
            UsageEvent(
                id=f"ev-{seed}-{n:05d}",
                request_id=f"req-{seed}-{n // 2}",  # two events per request, as RAG makes
                created_at=start + rng.randrange(int(days * DAY)) + rng.choice([0.0, 0.25]),
                principal=f"key:{key}" if key else "master",
                key_id=key,
                team=rng.choice(TEAMS),
                user=rng.choice(["u1", "u2", None]),
                org=rng.choice(["acme", None]),
                endpoint="chat",
                model=rng.choice(MODELS),
                deployment=rng.choice(DEPLOYMENTS),
                status=rng.choice(STATUSES),
                http_status=200,
                prompt_tokens=rng.randrange(0, 500),
                completion_tokens=rng.randrange(0, 300),
                cached_tokens=rng.randrange(0, 50),
                cost_usd=rng.randrange(0, 10_000) / 1024,  # exact in binary: sums are exact
                latency_ms=rng.randrange(1, 900) / 4,
                cache_hit=rng.random() < 0.2,
            )
        )
    return events


def expected_spend(
    events: list[UsageEvent], group_by: str, since: float = 0.0
) -> dict[str, tuple[int, int, int, int, float]]:
    """What a spend report must say, computed from the raw events in Python."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0.0])
    for e in events:
        if e.created_at < since:
            continue
        if group_by == "day":
            group = day_of(e.created_at)
        else:
            group = getattr(e, GROUP_COLUMNS[group_by]) or "(none)"
        row = totals[group]
        row[0] += 1
        row[1] += e.status == "ok"
        row[2] += e.prompt_tokens
        row[3] += e.completion_tokens
        row[4] += e.cost_usd
    return {g: (int(r[0]), int(r[1]), int(r[2]), int(r[3]), r[4]) for g, r in totals.items()}


async def reported(
    ledger: LedgerStore, group_by: str, since: float = 0.0
) -> dict[str, tuple[int, int, int, int, float]]:
    rows = await ledger.spend(group_by, since=since)  # type: ignore[arg-type]
    assert [r.cost_usd for r in rows] == sorted((r.cost_usd for r in rows), reverse=True)
    return {
        r.group: (r.requests, r.accepted, r.prompt_tokens, r.completion_tokens, r.cost_usd)
        for r in rows
    }


def retention(database: Database, now: float, **config: object) -> Retention:
    ledger = LedgerStore(database)
    return Retention(
        database,
        RetentionConfig.model_validate({"batch_size": 7, **config}),
        clock=lambda: now,
        rollups=ledger.rollups,
    )


class RequestLogConformance:
    async def test_rollups_equal_the_raw_ledger_for_every_grouping(
        self, database: Database
    ) -> None:
        ledger = LedgerStore(database)
        events = random_events(1, 400, start=MIDNIGHT, days=3)
        await ledger.insert(events)
        before = {group: await reported(ledger, group) for group in SPEND_GROUPS}
        rolled = await ledger.rollups.roll_up_all(now=MIDNIGHT + 5 * DAY, batch_size=37)
        assert rolled == 400
        assert await ledger.rollups.pending() == 0
        for group in SPEND_GROUPS:
            assert await reported(ledger, group) == expected_spend(events, group) == before[group]
        # Narrowed to one team, or one key and model: the same sums over those events.
        red = [e for e in events if e.team == "red"]
        rows = await ledger.spend("day", where={"team": "red"})
        assert {r.group: r.cost_usd for r in rows} == {
            day: totals[4] for day, totals in expected_spend(red, "day").items()
        }
        narrow = [e for e in events if e.key_id == "kb" and e.model == "m2"]
        rows = await ledger.spend("deployment", where={"key": "kb", "model": "m2"})
        assert {r.group: r.requests for r in rows} == {
            group: totals[0] for group, totals in expected_spend(narrow, "deployment").items()
        }
        # The rollup table's own sums are the raw ledger's, measure by measure.
        async with database.engine.connect() as conn:
            rollup_sums = (
                await conn.execute(
                    select(
                        func.sum(schema.rollups.c.requests),
                        func.sum(schema.rollups.c.errors),
                        func.sum(schema.rollups.c.cache_hits),
                        func.sum(schema.rollups.c.cached_tokens),
                        func.sum(schema.rollups.c.latency_ms),
                    )
                )
            ).one()
        assert tuple(rollup_sums) == (
            400,
            sum(e.status != "ok" for e in events),
            sum(e.cache_hit for e in events),
            sum(e.cached_tokens for e in events),
            sum(e.latency_ms for e in events),
        )

    async def test_spend_since_a_time_mixes_rollups_pending_and_a_partial_day(
        self, database: Database
    ) -> None:
        ledger = LedgerStore(database)
        events = random_events(2, 300, start=MIDNIGHT, days=3)
        await ledger.insert(events[:200])
        await ledger.rollups.roll_up_all(now=MIDNIGHT + 4 * DAY, batch_size=50)
        await ledger.insert(events[200:])  # shipped later: pending
        for since in (MIDNIGHT + DAY, MIDNIGHT + 0.5 * DAY, MIDNIGHT + 2.25 * DAY):
            for group in ("team", "day"):
                assert await reported(ledger, group, since) == expected_spend(events, group, since)
        spent = await ledger.spent("team", "red", MIDNIGHT + 1.5 * DAY)
        assert spent == sum(
            e.cost_usd for e in events if e.team == "red" and e.created_at >= MIDNIGHT + 1.5 * DAY
        )

    async def test_concurrent_rollups_count_every_event_once(
        self, database: Database, replica: Database
    ) -> None:
        ledger = LedgerStore(database)
        events = random_events(3, 500, start=MIDNIGHT, days=2)
        await ledger.insert(events)
        others = [LedgerStore(database).rollups, LedgerStore(replica).rollups]
        now = MIDNIGHT + 3 * DAY

        async def keep_rolling(rollups: Rollups) -> None:
            for _ in range(100):
                if await rollups.roll_up(now=now, batch_size=20) == 0 and not (
                    await ledger.rollups.pending()
                ):
                    return
                await asyncio.sleep(0)

        await asyncio.gather(*(keep_rolling(r) for r in [ledger.rollups, *others]))
        assert await ledger.rollups.pending() == 0
        assert await reported(ledger, "key") == expected_spend(events, "key")

    async def test_purge_deletes_only_rolled_up_events_and_spend_stays_right(
        self, database: Database
    ) -> None:
        ledger = LedgerStore(database)
        events = random_events(4, 300, start=MIDNIGHT, days=10)
        await ledger.insert(events)
        now = MIDNIGHT + 12 * DAY + 3600
        keep = retention(database, now, request_events_days=5)
        # Nothing rolled up yet: a purge alone deletes nothing.
        assert await keep.purge_events(MIDNIGHT + 8 * DAY) == 0
        assert await ledger.count() == 300

        report = await keep.run_once()
        assert report.rolled_up == 300
        cutoff = MIDNIGHT + 8 * DAY  # today (day 12) and the 4 before it are kept
        old = [e for e in events if e.created_at < cutoff]
        assert report.events_deleted == len(old) > 0
        assert await ledger.count() == 300 - len(old)
        assert min(e.created_at for e in await ledger.events(limit=1000)) >= cutoff
        for group in SPEND_GROUPS:
            assert await reported(ledger, group) == expected_spend(events, group)
        for since in (MIDNIGHT + 2 * DAY, cutoff, MIDNIGHT + 9.5 * DAY):
            assert await reported(ledger, "team", since) == expected_spend(events, "team", since)
        # Inside a purged day only the day's rollup is left: the report covers the whole day.
        whole_day = MIDNIGHT + 2 * DAY
        assert await reported(ledger, "team", whole_day + 3600) == expected_spend(
            events, "team", whole_day
        )
        # An event shipped late into a purged day is counted by the next round.
        late = random_events(5, 1, start=MIDNIGHT + DAY, days=1)
        await ledger.insert(late)
        await keep.run_once()
        assert await reported(ledger, "key") == expected_spend(events + late, "key")
        assert await ledger.count() == 300 - len(old)

    async def test_rollups_and_audit_entries_expire_too(self, database: Database) -> None:
        ledger = LedgerStore(database)
        events = random_events(6, 100, start=MIDNIGHT, days=6)
        await ledger.insert(events)
        directory = DirectoryStore(database)
        for n in range(20):
            await directory.delete_subject(
                await _team(directory, f"t{n}"), actor="admin", at=MIDNIGHT + n * 0.3 * DAY
            )
        now = MIDNIGHT + 6 * DAY
        report = await retention(
            database, now, request_events_days=1, rollups_days=3, audit_days=2
        ).run_once()
        assert report.rolled_up == 100
        assert report.audit_deleted > 0
        kept = [e for e in events if e.created_at >= MIDNIGHT + 4 * DAY]
        assert await reported(ledger, "model") == expected_spend(kept, "model")
        assert all(entry.at >= MIDNIGHT + 5 * DAY for entry in await directory.audit(limit=100))

    async def test_pages_have_no_duplicates_or_gaps_while_events_arrive(
        self, database: Database
    ) -> None:
        ledger = LedgerStore(database)
        events = random_events(7, 120, start=MIDNIGHT, days=1)
        # Ties on created_at: the keyset must order them by id.
        events += [e.model_copy(update={"id": e.id + "-twin"}) for e in events[:15]]
        await ledger.insert(events)
        seen: list[UsageEvent] = []
        cursor = None
        newer = random_events(8, 40, start=MIDNIGHT + DAY, days=1)
        while True:
            page, cursor = await ledger.page(EventQuery(), limit=11, after=cursor)
            seen.extend(page)
            if newer:  # newer events land between page reads
                await ledger.insert(newer[:10])
                newer = newer[10:]
            if cursor is None:
                break
        assert len(seen) == len({e.id for e in seen}) == len(events)
        assert {e.id for e in seen} == {e.id for e in events}
        positions = [(e.created_at, e.id) for e in seen]
        assert positions == sorted(positions, reverse=True)

    async def test_filters_select_what_they_name(self, database: Database) -> None:
        ledger = LedgerStore(database)
        events = random_events(9, 200, start=MIDNIGHT, days=2)
        await ledger.insert(events)
        cases = [
            (EventQuery(key_id="ka"), lambda e: e.key_id == "ka"),
            (EventQuery(team="blue", model="m2"), lambda e: e.team == "blue" and e.model == "m2"),
            (EventQuery(status="error"), lambda e: e.status != "ok"),
            (EventQuery(status="rate_limit_exceeded"), lambda e: e.status == "rate_limit_exceeded"),
            (
                EventQuery(deployment="m1#1", org="acme"),
                lambda e: e.deployment == "m1#1" and e.org == "acme",
            ),
            (
                EventQuery(since=MIDNIGHT + 0.5 * DAY, until=MIDNIGHT + DAY, user="u2"),
                lambda e: MIDNIGHT + 0.5 * DAY <= e.created_at < MIDNIGHT + DAY and e.user == "u2",
            ),
            (EventQuery(request_id="req-9-7"), lambda e: e.request_id == "req-9-7"),
        ]
        for query, wanted in cases:
            page, cursor = await ledger.page(query, limit=1000)
            assert cursor is None
            expected = {e.id for e in events if wanted(e)}
            assert expected
            assert {e.id for e in page} == expected, query
        both = await ledger.request("req-9-7")
        assert [e.id for e in both] == sorted(
            (e.id for e in events if e.request_id == "req-9-7"),
            key=lambda i: next(e.created_at for e in events if e.id == i),
        )


async def _team(directory: DirectoryStore, name: str) -> SubjectRecord:
    record = SubjectRecord(kind="team", id=name, created_at=MIDNIGHT, updated_at=MIDNIGHT)
    await directory.put_subject(record, actor="admin", action="create", before=None)
    return record


class TestSQLite(OnSQLite, RequestLogConformance):
    pass


class TestPostgres(OnPostgres, RequestLogConformance):
    pass
