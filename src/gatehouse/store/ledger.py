"""The usage ledger in SQL: idempotent batch inserts and spend reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gatehouse.core.governance import SpendRow, UsageEvent
from gatehouse.store import schema
from gatehouse.store.database import Database

GroupBy = Literal["key", "team", "user", "model"]
OK_STATUS = "ok"

_GROUP_COLUMNS = {
    "key": schema.ledger.c.key_id,
    "team": schema.ledger.c.team,
    "user": schema.ledger.c.user,
    "model": schema.ledger.c.model,
}


class LedgerStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert(self, events: Sequence[UsageEvent]) -> int:
        """Insert events, skipping ids already present (a re-shipped batch). Returns
        how many rows were new."""
        if not events:
            return 0
        rows = [event.model_dump() for event in events]
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        statement = (
            insert(schema.ledger)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(schema.ledger.c.id)
        )
        # RETURNING counts the new rows on every driver (asyncpg reports no
        # rowcount for a batch); SQLAlchemy sends the batch as multi-row VALUES.
        async with self._db.engine.begin() as conn:
            result = await conn.execute(statement, rows)
            return len(result.all())

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
        """Totals per group since a time, successful and failed calls alike."""
        table = schema.ledger
        column = _GROUP_COLUMNS[group_by]
        query = (
            select(
                column.label("group"),
                func.count().label("requests"),
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
                prompt_tokens=int(row.prompt_tokens),
                completion_tokens=int(row.completion_tokens),
                cost_usd=float(row.cost_usd),
            )
            for row in rows
        ]

    async def spent(
        self, kind: Literal["key", "team", "user"], subject: str, since: float
    ) -> float:
        """What one key, team or user has spent since a time (budget seeding)."""
        table = schema.ledger
        column = _GROUP_COLUMNS[kind]
        query = select(func.coalesce(func.sum(table.c.cost_usd), 0.0)).where(
            column == subject, table.c.created_at >= since
        )
        async with self._db.engine.connect() as conn:
            return float(await conn.scalar(query) or 0.0)
