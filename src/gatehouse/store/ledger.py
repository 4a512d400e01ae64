"""The usage ledger in SQL: idempotent batch inserts, the request log, spend reports."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy import ColumnElement, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gatehouse.core.pseudonyms import Pseudonyms
from gatehouse.core.records import SpendRow, UsageEvent
from gatehouse.store import schema
from gatehouse.store.database import Database
from gatehouse.store.rollups import (
    OK_STATUS,
    Rollups,
    SpendFilter,
    SpendGroup,
    purged_before,
)

# The columns of a usage event, as the outbox holds and ships them (the table
# also has ``rolled_up_at``, which only the rollup job writes).
COLUMNS = tuple(UsageEvent.model_fields)
EVENT_COLUMNS = tuple(schema.ledger.c[name] for name in COLUMNS)
# What an event recorded by an older release lacks: the usage buckets added
# since (migration 0006). An outbox row written before an upgrade ships with these.
DEFAULTS: dict[str, int] = {"cache_write_tokens": 0, "reasoning_tokens": 0}


class LedgerStore:
    def __init__(self, database: Database, *, pseudonyms: Pseudonyms | None = None) -> None:
        self._db = database
        # Events hold user ids as pseudonyms when they are on: a filter by user
        # is translated, so callers ask about "alice" either way.
        self.pseudonyms = pseudonyms or Pseudonyms(None)
        self.rollups = Rollups(database)
        self._compiled: tuple[str, tuple[str, ...]] | None = None

    async def insert(self, events: Sequence[UsageEvent | Mapping[str, Any]]) -> None:
        """Insert events (records, or row dicts as the outbox holds them), skipping
        ids already present (a re-shipped batch)."""
        if not events:
            return
        sql, columns = self._insert_sql()
        rows = [e.model_dump() if isinstance(e, UsageEvent) else e for e in events]
        params = [
            tuple(row.get(column, DEFAULTS.get(column)) for column in columns) for row in rows
        ]
        # Straight to the driver's executemany: this runs for every request the
        # gateway serves, and SQLAlchemy's per-row parameter processing would
        # cost more than the insert itself.
        async with self._db.engine.begin() as conn:
            await conn.exec_driver_sql(sql, params)

    @property
    def sqlite_file(self) -> Path | None:
        """The ledger's SQLite file, when it is one (the embedded default)."""
        return self._db.sqlite_file

    def _insert_sql(self) -> tuple[str, tuple[str, ...]]:
        if self._compiled is None:
            insert = sqlite_insert if self._db.is_sqlite else pg_insert
            statement = insert(schema.ledger).on_conflict_do_nothing(index_elements=["id"])
            compiled = statement.compile(
                dialect=self._db.engine.dialect,
                column_keys=list(COLUMNS),
            )
            positions = compiled.positiontup
            assert positions is not None
            self._compiled = (str(compiled), tuple(positions))
        return self._compiled

    async def events(self, *, since: float = 0.0, limit: int = 100) -> list[UsageEvent]:
        table = schema.ledger
        query = (
            select(*EVENT_COLUMNS)
            .where(table.c.created_at >= since)
            .order_by(table.c.created_at, table.c.id)
            .limit(limit)
        )
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [UsageEvent.model_validate(dict(row._mapping)) for row in rows]

    async def count(self, *, status: str | None = None) -> int:
        query = select(func.count()).select_from(schema.ledger)
        if status is not None:
            query = query.where(schema.ledger.c.status == status)
        async with self._db.engine.connect() as conn:
            return int(await conn.scalar(query) or 0)

    async def spend(
        self,
        group_by: SpendGroup,
        *,
        since: float = 0.0,
        where: Mapping[SpendFilter, str] | None = None,
    ) -> list[SpendRow]:
        """Totals per group since a time: requests accepted and refused apart
        (a refused request is any that did not end ``ok``: limits, budgets,
        policy and upstream errors), tokens and cost of all. Read from the
        daily rollups and the events not yet rolled up, so purged events still
        count (see :mod:`gatehouse.store.rollups`)."""
        if where and "user" in where:
            where = {**where, "user": str(self.pseudonyms.user(where["user"]))}
        return await self.rollups.spend(group_by, since=since, where=where)

    async def spent(
        self, kind: Literal["key", "team", "user", "org"], subject: str, since: float
    ) -> float:
        """What one key, team or user has spent since a time (budget seeding)."""
        if kind == "user":
            subject = str(self.pseudonyms.user(subject))
        return await self.rollups.spent(kind, subject, since)

    async def purged_before(self, data_class: str) -> float:
        """The time before which ``data_class`` has been purged (0: never)."""
        async with self._db.engine.connect() as conn:
            return await purged_before(conn, data_class)

    # -- the request log --

    async def page(
        self, query: EventQuery, *, limit: int, after: Cursor | None = None
    ) -> tuple[list[UsageEvent], Cursor | None]:
        """Events matching ``query``, newest first, after ``after`` (keyset on
        ``(created_at, id)``, so events recorded meanwhile never shift a page);
        returns the page and the cursor of the next one (None: no more)."""
        table = schema.ledger
        if query.user is not None:
            query = dataclasses.replace(query, user=self.pseudonyms.user(query.user))
        statement = select(*EVENT_COLUMNS).where(*_conditions(query))
        if after is not None:
            position = tuple_(literal(after[0]), literal(after[1]))
            statement = statement.where(tuple_(table.c.created_at, table.c.id) < position)
        statement = statement.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(
            limit + 1
        )
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        events = [UsageEvent.model_validate(dict(row._mapping)) for row in rows[:limit]]
        more = len(rows) > limit
        return events, (events[-1].created_at, events[-1].id) if more else None

    async def request(self, request_id: str, within: EventQuery | None = None) -> list[UsageEvent]:
        """Every event of one request (a RAG answer is several calls), oldest
        first; with ``within``, only those matching it too (a caller's scope)."""
        query = dataclasses.replace(within or EventQuery(), request_id=request_id)
        events, _ = await self.page(query, limit=1000)
        return events[::-1]


Cursor = tuple[float, str]  # (created_at, id) of the last event of a page


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters of the request log; None matches anything. ``status`` is a
    status (``ok`` or an error type such as ``rate_limit_exceeded``), or
    ``error`` for every status but ``ok``. ``since`` is inclusive, ``until``
    exclusive."""

    key_id: str | None = None
    team: str | None = None
    user: str | None = None
    org: str | None = None
    model: str | None = None
    deployment: str | None = None
    status: str | None = None
    request_id: str | None = None
    since: float | None = None
    until: float | None = None


ANY_ERROR = "error"


def _conditions(query: EventQuery) -> list[ColumnElement[bool]]:
    table = schema.ledger
    found: list[ColumnElement[bool]] = []
    for name in ("key_id", "team", "user", "org", "model", "deployment", "request_id"):
        value = getattr(query, name)
        if value is not None:
            found.append(table.c[name] == value)
    if query.status == ANY_ERROR:
        found.append(table.c.status != OK_STATUS)
    elif query.status is not None:
        found.append(table.c.status == query.status)
    if query.since is not None:
        found.append(table.c.created_at >= query.since)
    if query.until is not None:
        found.append(table.c.created_at < query.until)
    return found


def encode_cursor(cursor: Cursor) -> str:
    """An opaque page token for a keyset position."""
    raw = orjson.dumps([cursor[0], cursor[1]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """The keyset position of a token from :func:`encode_cursor`; ValueError if it is not one."""
    try:
        value = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise ValueError("cursor is not one this server issued") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int | float)
        or isinstance(value[0], bool)
        or not isinstance(value[1], str)
    ):
        raise ValueError("cursor is not one this server issued")
    return float(value[0]), value[1]
