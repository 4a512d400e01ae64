"""The usage ledger in SQL: idempotent batch inserts and spend reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gatehouse.core.records import SpendRow, UsageEvent
from gatehouse.store import schema
from gatehouse.store.database import Database

GroupBy = Literal["key", "team", "user", "org", "model"]
OK_STATUS = "ok"

COLUMNS = tuple(column.name for column in schema.ledger.columns)

_GROUP_COLUMNS = {
    "key": schema.ledger.c.key_id,
    "team": schema.ledger.c.team,
    "org": schema.ledger.c.org,
    "user": schema.ledger.c.user,
    "model": schema.ledger.c.model,
}


class LedgerStore:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._compiled: tuple[str, tuple[str, ...]] | None = None

    async def insert(self, events: Sequence[UsageEvent | Mapping[str, Any]]) -> None:
        """Insert events (records, or row dicts as the outbox holds them), skipping
        ids already present (a re-shipped batch)."""
        if not events:
            return
        sql, columns = self._insert_sql()
        rows = [e.model_dump() if isinstance(e, UsageEvent) else e for e in events]
        params = [tuple(row.get(column) for column in columns) for row in rows]
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
                column_keys=[column.name for column in schema.ledger.columns],
            )
            positions = compiled.positiontup
            assert positions is not None
            self._compiled = (str(compiled), tuple(positions))
        return self._compiled

    async def events(self, *, since: float = 0.0, limit: int = 100) -> list[UsageEvent]:
        table = schema.ledger
        query = (
            select(table)
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

    async def spend(self, group_by: GroupBy, *, since: float = 0.0) -> list[SpendRow]:
        """Totals per group since a time: requests accepted and refused apart
        (a refused request is any that did not end ``ok``: limits, budgets,
        policy and upstream errors), tokens and cost of all."""
        table = schema.ledger
        column = _GROUP_COLUMNS[group_by]
        accepted = func.coalesce(func.sum(case((table.c.status == OK_STATUS, 1), else_=0)), 0)
        query = (
            select(
                column.label("group"),
                func.count().label("requests"),
                accepted.label("accepted"),
                func.coalesce(func.sum(table.c.prompt_tokens), 0).label("prompt_tokens"),
                func.coalesce(func.sum(table.c.completion_tokens), 0).label("completion_tokens"),
                func.coalesce(func.sum(table.c.cost_usd), 0.0).label("cost_usd"),
            )
            .where(table.c.created_at >= since)
            .group_by(column)
            .order_by(func.sum(table.c.cost_usd).desc(), column)
        )
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            SpendRow(
                group=row.group if row.group is not None else "(none)",
                requests=int(row.requests),
                accepted=int(row.accepted),
                refused=int(row.requests) - int(row.accepted),
                prompt_tokens=int(row.prompt_tokens),
                completion_tokens=int(row.completion_tokens),
                cost_usd=float(row.cost_usd),
            )
            for row in rows
        ]

    async def spent(
        self, kind: Literal["key", "team", "user", "org"], subject: str, since: float
    ) -> float:
        """What one key, team or user has spent since a time (budget seeding)."""
        table = schema.ledger
        column = _GROUP_COLUMNS[kind]
        query = select(func.coalesce(func.sum(table.c.cost_usd), 0.0)).where(
            column == subject, table.c.created_at >= since
        )
        async with self._db.engine.connect() as conn:
            return float(await conn.scalar(query) or 0.0)
