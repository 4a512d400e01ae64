"""Daily rollups of the usage ledger, and the spend reports read from them.

The rollup job (:meth:`Rollups.roll_up`) claims a batch of events that no
rollup counts yet (``rolled_up_at IS NULL``), stamps them, and adds their
totals to ``ledger_rollups`` with an upsert, all in one transaction: an event
is counted exactly once however many replicas run the job at the same time
(on PostgreSQL a transaction-scoped advisory lock lets one of them work and
the others skip the round; SQLite has one writer anyway), and a failure rolls
the stamps back with the totals. An event shipped late (after an outage) is
simply counted into its own day by the next round.

Spend reads, in one statement (one snapshot, so an event moving from pending
to rolled up between two reads is never counted twice or missed):

- the rollups of whole UTC days from the first full day on or after ``since``;
- the events not yet rolled up from that day on;
- the raw events of the partial day before it, ``since`` to midnight, while
  that day's events are kept; once they are purged, the whole day's rollup.

So figures stay exact after raw events are purged, at whole-day resolution for
purged days.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    func,
    literal,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gatehouse.core.records import SpendRow
from gatehouse.store import schema
from gatehouse.store.database import Database

DAY = 86_400.0
OK_STATUS = "ok"
EVENTS_CLASS = "request_events"  # the retention table's name for raw usage events
# The dimensions of a rollup row; a missing one is stored as NONE.
DIMENSIONS = ("team", "key_id", "user", "org", "model", "deployment")
NONE = ""
NONE_GROUP = "(none)"  # how a report names the group of events without that dimension

SpendGroup = Literal["key", "team", "user", "org", "model", "deployment", "day"]
# What a spend report can be narrowed to: every grouping but the day.
SpendFilter = Literal["key", "team", "user", "org", "model", "deployment"]
SPEND_GROUPS: tuple[SpendGroup, ...] = ("key", "team", "user", "org", "model", "deployment", "day")
# A report's grouping -> the ledger (and rollup) column it groups by.
GROUP_COLUMNS: dict[SpendFilter, str] = {
    "key": "key_id",
    "team": "team",
    "user": "user",
    "org": "org",
    "model": "model",
    "deployment": "deployment",
}
_NONE_SQL: ColumnElement[str] = literal_column("''")
_ROLLUP_LOCK = 0x726F_6C6C  # the advisory lock key of the rollup job on PostgreSQL


def day_of(epoch: float) -> str:
    """The UTC calendar day of an epoch time, ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def day_start(epoch: float) -> float:
    """The epoch time of the UTC midnight that starts ``epoch``'s day."""
    return math.floor(epoch / DAY) * DAY


@dataclass(slots=True)
class Totals:
    """One rollup row's measures."""

    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0

    def add(self, event: Mapping[Any, Any]) -> None:
        self.requests += 1
        self.errors += event["status"] != OK_STATUS
        self.cache_hits += bool(event["cache_hit"])
        self.prompt_tokens += event["prompt_tokens"]
        self.completion_tokens += event["completion_tokens"]
        self.cached_tokens += event["cached_tokens"]
        self.cache_write_tokens += event["cache_write_tokens"]
        self.reasoning_tokens += event["reasoning_tokens"]
        self.cost_usd += event["cost_usd"]
        self.latency_ms += event["latency_ms"]


MEASURES = tuple(f.name for f in fields(Totals))
# The token counts of an event, each summed by the rollups and reported by spend:
# the totals, then their parts (see gatehouse.core.usage).
TOKEN_BUCKETS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
# (day, team, key_id, user, org, model, deployment)
RollupKey = tuple[str, str, str, str, str, str, str]


def aggregate(events: Iterable[Mapping[Any, Any]]) -> dict[RollupKey, Totals]:
    """Usage events (row mappings) summed per day and dimensions: pure."""
    totals: dict[RollupKey, Totals] = {}
    for event in events:
        key: RollupKey = (
            day_of(event["created_at"]),
            event["team"] or NONE,
            event["key_id"] or NONE,
            event["user"] or NONE,
            event["org"] or NONE,
            event["model"] or NONE,
            event["deployment"] or NONE,
        )
        found = totals.get(key)
        if found is None:
            found = totals[key] = Totals()
        found.add(event)
    return totals


@dataclass(frozen=True, slots=True)
class SpendWindow:
    """How a report starting at ``since`` splits between raw events and rollups:
    raw events in ``[partial_from, boundary)``, rollups and pending events from
    ``boundary`` (a UTC midnight, or 0) on."""

    boundary: float
    partial_from: float | None


def spend_window(since: float, events_purged_before: float) -> SpendWindow:
    """Pure: the split for a report since ``since`` when raw events before
    ``events_purged_before`` are gone (see the module docstring)."""
    if since <= 0:
        return SpendWindow(0.0, None)
    start = day_start(since)
    if since == start:
        return SpendWindow(since, None)
    if since < events_purged_before:
        return SpendWindow(start, None)  # only the day's rollup is left: the whole day
    return SpendWindow(start + DAY, since)


class Rollups:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def roll_up(self, *, now: float, batch_size: int) -> int:
        """Count one batch of pending events into the rollups; returns how many
        (0 also when another replica holds the job this instant)."""
        table = schema.ledger
        claimed = (
            select(table.c.id)
            .where(table.c.rolled_up_at.is_(None))
            .order_by(table.c.created_at)
            .limit(batch_size)
            .scalar_subquery()
        )
        # ``rolled_up_at IS NULL`` again on the outer statement: a concurrent
        # claim of the same row is re-checked against it after the row lock.
        stamp = (
            update(table)
            .where(table.c.id.in_(claimed), table.c.rolled_up_at.is_(None))
            .values(rolled_up_at=now)
            .returning(
                table.c.created_at,
                *(table.c[name] for name in DIMENSIONS),
                table.c.status,
                table.c.cache_hit,
                *(table.c[name] for name in TOKEN_BUCKETS),
                table.c.cost_usd,
                table.c.latency_ms,
            )
        )
        async with self._db.engine.begin() as conn:
            if not self._db.is_sqlite:
                locked = await conn.scalar(
                    select(func.pg_try_advisory_xact_lock(literal(_ROLLUP_LOCK)))
                )
                if not locked:
                    return 0
            events = [row._mapping for row in (await conn.execute(stamp)).all()]
            if not events:
                return 0
            rows = [
                {
                    "day": key[0],
                    **dict(zip(DIMENSIONS, key[1:], strict=True)),
                    **{name: getattr(totals, name) for name in MEASURES},
                    "updated_at": now,
                }
                # Sorted: concurrent upserts take row locks in one order.
                for key, totals in sorted(aggregate(events).items())
            ]
            await conn.execute(self._upsert(), rows)
        return len(events)

    async def roll_up_all(self, *, now: float, batch_size: int) -> int:
        """Roll up until nothing is pending (or another replica is at it)."""
        total = 0
        while True:
            counted = await self.roll_up(now=now, batch_size=batch_size)
            total += counted
            if counted < batch_size:
                return total

    async def pending(self) -> int:
        """Events in the ledger that no rollup counts yet."""
        table = schema.ledger
        query = select(func.count()).select_from(table).where(table.c.rolled_up_at.is_(None))
        async with self._db.engine.connect() as conn:
            return int(await conn.scalar(query) or 0)

    async def spend(
        self,
        group_by: SpendGroup,
        *,
        since: float = 0.0,
        where: Mapping[SpendFilter, str] | None = None,
    ) -> list[SpendRow]:
        """Totals per group since a time (see the module docstring for how),
        costliest first; ``where`` keeps the events whose dimensions have these
        values (``{"team": "red"}``: the red team's spend per ``group_by``)."""
        where = where or {}
        async with self._db.engine.connect() as conn:
            window = spend_window(since, await purged_before(conn, EVENTS_CLASS))
            parts: list[Select[Any]] = []
            if window.partial_from is not None:
                parts.append(
                    self._raw(group_by, where, window.partial_from, window.boundary, pending=False)
                )
            parts.append(self._rolled(group_by, where, window.boundary))
            parts.append(self._raw(group_by, where, window.boundary, None, pending=True))
            union = union_all(*parts).subquery()
            cost = func.sum(union.c.cost_usd)
            query = (
                select(
                    union.c.grp,
                    func.sum(union.c.requests).label("requests"),
                    func.sum(union.c.accepted).label("accepted"),
                    *(func.sum(union.c[name]).label(name) for name in TOKEN_BUCKETS),
                    cost.label("cost_usd"),
                )
                .group_by(union.c.grp)
                .order_by(cost.desc(), union.c.grp)
            )
            rows = (await conn.execute(query)).all()
        return [
            SpendRow(
                group=row.grp if row.grp else NONE_GROUP,
                requests=int(row.requests),
                accepted=int(row.accepted),
                refused=int(row.requests) - int(row.accepted),
                **{name: int(row._mapping[name]) for name in TOKEN_BUCKETS},
                cost_usd=float(row.cost_usd),
            )
            for row in rows
        ]

    async def spent(
        self, kind: Literal["key", "team", "user", "org"], subject: str, since: float
    ) -> float:
        """What one key, team, user or organisation has spent since a time."""
        rows = await self.spend(kind, since=since, where={kind: subject})
        return sum(row.cost_usd for row in rows)

    def _raw(
        self,
        group_by: SpendGroup,
        where: Mapping[SpendFilter, str],
        start: float,
        end: float | None,
        *,
        pending: bool,
    ) -> Select[Any]:
        table = schema.ledger
        if group_by == "day":
            group: ColumnElement[Any] = self._day_expression()
        else:
            group = func.coalesce(table.c[GROUP_COLUMNS[group_by]], _NONE_SQL)
        query = select(
            group.label("grp"),
            func.count().label("requests"),
            func.sum(case((table.c.status == OK_STATUS, 1), else_=0)).label("accepted"),
            *(func.sum(table.c[name]).label(name) for name in TOKEN_BUCKETS),
            func.sum(table.c.cost_usd).label("cost_usd"),
        ).where(table.c.created_at >= start)
        if end is not None:
            query = query.where(table.c.created_at < end)
        if pending:
            query = query.where(table.c.rolled_up_at.is_(None))
        for name, value in where.items():
            # On the bare column (a filter value is never ''), so that the
            # (column, created_at) indexes serve budget seeding.
            query = query.where(table.c[GROUP_COLUMNS[name]] == value)
        return query.group_by(group)

    def _rolled(
        self, group_by: SpendGroup, where: Mapping[SpendFilter, str], start: float
    ) -> Select[Any]:
        table = schema.rollups
        group = table.c.day if group_by == "day" else table.c[GROUP_COLUMNS[group_by]]
        query = select(
            group.label("grp"),
            func.sum(table.c.requests).label("requests"),
            func.sum(table.c.requests - table.c.errors).label("accepted"),
            *(func.sum(table.c[name]).label(name) for name in TOKEN_BUCKETS),
            func.sum(table.c.cost_usd).label("cost_usd"),
        )
        if start > 0:
            query = query.where(table.c.day >= day_of(start))
        for name, value in where.items():
            query = query.where(table.c[GROUP_COLUMNS[name]] == value)
        return query.group_by(group)

    def _day_expression(self) -> ColumnElement[Any]:
        created = schema.ledger.c.created_at
        # Constants inline, not bound: PostgreSQL matches the grouped expression
        # against the selected one, and two bound parameters never match.
        if self._db.is_sqlite:
            epoch: ColumnElement[str] = literal_column("'unixepoch'")
            return func.strftime(literal_column("'%Y-%m-%d'"), created, epoch)
        utc = func.timezone(literal_column("'UTC'"), func.to_timestamp(created))
        return func.to_char(utc, literal_column("'YYYY-MM-DD'"))

    def _upsert(self) -> Any:
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        statement = insert(schema.rollups)
        added = {name: schema.rollups.c[name] + statement.excluded[name] for name in MEASURES}
        return statement.on_conflict_do_update(
            index_elements=["day", *DIMENSIONS],
            set_={**added, "updated_at": statement.excluded.updated_at},
        )


async def purged_before(conn: AsyncConnection, data_class: str) -> float:
    """The time before which ``data_class`` has been purged (0: never)."""
    table = schema.retention
    value = await conn.scalar(select(table.c.purged_before).where(table.c.data_class == data_class))
    return float(value) if value is not None else 0.0
