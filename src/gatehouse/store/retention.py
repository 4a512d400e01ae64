"""Retention: roll the ledger up, then delete each class of data past its age.

:class:`Retention` runs one round (:meth:`Retention.run_once`): count pending
usage events into the daily rollups, then purge raw usage events, rollups,
audit entries and stored responses older than ``retention.*_days``. Raw events are deleted only
once a rollup counts them (``rolled_up_at`` set), so a purge never changes a
spend figure; an event still pending past its age waits for the next round.

Every delete is a bounded batch in its own short transaction, so the tables
stay writable while a large backlog is purged. Cut-offs fall on UTC midnights,
so a day is purged whole and spend for it comes from its rollup alone. Each
replica may run rounds on its own: every step is safe to repeat and to run
concurrently. The server runs a round every ``retention.interval_seconds``;
``gatehouse purge`` runs one by hand.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gatehouse.core.config import RetentionConfig
from gatehouse.core.ids import Clock
from gatehouse.core.tasks import cancel_and_wait
from gatehouse.store import schema
from gatehouse.store.database import Database
from gatehouse.store.rollups import DAY, EVENTS_CLASS, Rollups, day_of, day_start

log = logging.getLogger("gatehouse.retention")

ROLLUPS_CLASS = "rollups"
AUDIT_CLASS = "audit"
RESPONSES_CLASS = "responses"


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one round did."""

    rolled_up: int
    events_deleted: int
    rollups_deleted: int
    audit_deleted: int
    responses_deleted: int = 0


def cutoff(now: float, days: int | None) -> float | None:
    """The UTC midnight before which data kept ``days`` days is old; None keeps all.

    Today counts as the first day: with ``days=1`` everything before today's
    midnight goes."""
    if days is None:
        return None
    return day_start(now) - (days - 1) * DAY


class Retention:
    def __init__(
        self, database: Database, config: RetentionConfig, *, clock: Clock, rollups: Rollups
    ) -> None:
        self._db = database
        self._config = config
        self._clock = clock
        self._rollups = rollups
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.failures = 0

    async def run_once(self) -> RetentionReport:
        config = self._config
        now = self._clock()
        rolled = await self._rollups.roll_up_all(now=now, batch_size=config.batch_size)
        events = rollups = audit = 0
        before = cutoff(now, config.request_events_days)
        if before is not None:
            events = await self.purge_events(before)
        before = cutoff(now, config.rollups_days)
        if before is not None:
            rollups = await self.purge_rollups(before)
        before = cutoff(now, config.audit_days)
        if before is not None:
            audit = await self.purge_audit(before)
        responses = 0
        before = cutoff(now, config.responses_days)
        if before is not None:
            responses = await self.purge_responses(before)
        self.rounds += 1
        return RetentionReport(rolled, events, rollups, audit, responses)

    async def purge_events(self, before: float) -> int:
        """Delete raw usage events older than ``before`` that a rollup counts."""
        table = schema.ledger
        deleted = await self._batches(
            table,
            table.c.created_at < before,
            table.c.rolled_up_at.is_not(None),
        )
        await self._record(EVENTS_CLASS, before, deleted)
        return deleted

    async def purge_audit(self, before: float) -> int:
        table = schema.audit_log
        deleted = await self._batches(table, table.c.at < before)
        await self._record(AUDIT_CLASS, before, deleted)
        return deleted

    async def purge_responses(self, before: float) -> int:
        """Delete stored Responses API responses created before ``before``: a chain
        that continues from one gets a 404 for it, as after a client's delete."""
        table = schema.responses
        deleted = await self._batches(table, table.c.created_at < before)
        await self._record(RESPONSES_CLASS, before, deleted)
        return deleted

    async def purge_rollups(self, before: float) -> int:
        """Delete the rollups of days before ``before``, one day per transaction
        (a day's rows are one key range of the primary key)."""
        table = schema.rollups
        first_kept = day_of(before)
        async with self._db.engine.connect() as conn:
            days = (
                await conn.scalars(select(table.c.day).where(table.c.day < first_kept).distinct())
            ).all()
        deleted = 0
        for day in sorted(days):
            async with self._db.engine.begin() as conn:
                deleted += (await conn.execute(delete(table).where(table.c.day == day))).rowcount
            await asyncio.sleep(0)
        await self._record(ROLLUPS_CLASS, before, deleted)
        return deleted

    async def _batches(self, table: Table, *conditions: ColumnElement[bool]) -> int:
        """Delete the rows matching ``conditions``, ``batch_size`` per transaction
        (chosen by primary key ``id``: one short lock at a time)."""
        size = self._config.batch_size
        chosen = select(table.c.id).where(*conditions).limit(size).scalar_subquery()
        total = 0
        while True:
            async with self._db.engine.begin() as conn:
                result = await conn.execute(delete(table).where(table.c.id.in_(chosen)))
                deleted = result.rowcount
            total += deleted
            if deleted < size:
                return total
            await asyncio.sleep(0)  # let the rest of the process in between batches

    async def _record(self, data_class: str, before: float, deleted: int) -> None:
        """Move ``data_class``'s purge horizon forward (never back) and count."""
        table = schema.retention
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        statement = insert(table).values(
            data_class=data_class, purged_before=before, purged_at=self._clock(), deleted=deleted
        )
        # The larger of the two: SQLite's two-argument max(), PostgreSQL's greatest().
        larger = func.max if self._db.is_sqlite else func.greatest
        statement = statement.on_conflict_do_update(
            index_elements=["data_class"],
            set_={
                "purged_before": larger(table.c.purged_before, statement.excluded.purged_before),
                "purged_at": statement.excluded.purged_at,
                "deleted": table.c.deleted + statement.excluded.deleted,
            },
        )
        async with self._db.engine.begin() as conn:
            await conn.execute(statement)

    # -- the periodic round --

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="gatehouse-retention")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            # First wait: a start (of several workers at once) stays light.
            await asyncio.sleep(self._interval)
            try:
                report = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                log.warning("retention round failed (next in %.0fs): %s", self._interval, exc)
            else:
                if (
                    report.events_deleted
                    or report.rollups_deleted
                    or report.audit_deleted
                    or report.responses_deleted
                ):
                    log.info("retention round: %s", report)

    @property
    def _interval(self) -> float:
        return self._config.interval_seconds
