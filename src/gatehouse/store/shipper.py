"""Ships outbox events to the ledger in batches, forever, exactly once per id.

A failed shipment (the database is down) leaves the events in the outbox and
is retried with a capped backoff; the ledger insert ignores ids it already
holds, so a batch shipped but not yet acknowledged when the process died is
harmless when shipped again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from gatehouse.core.tasks import cancel_and_wait
from gatehouse.store.ledger import COLUMNS, DEFAULTS, LedgerStore
from gatehouse.store.outbox import Outbox

log = logging.getLogger("gatehouse.shipper")

BACKLOG_EVERY = 1.0  # seconds between counts of the outbox's backlog


class Shipper:
    def __init__(
        self, outbox: Outbox, ledger: LedgerStore, *, interval: float, batch_size: int
    ) -> None:
        self._outbox = outbox
        self._ledger = ledger
        self._interval = interval
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        self.shipped = 0
        self.failures = 0
        # Events waiting in the outbox (every process sharing it), as last counted.
        self.backlog = 0
        self._counted_at = -BACKLOG_EVERY

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="gatehouse-shipper")

    async def stop(self) -> None:
        """Stop the loop, then make one last attempt to ship what is pending."""
        await cancel_and_wait(self._task)
        self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), timeout=5)

    async def ship_once(self) -> int:
        """Ship one batch; returns how many events it held."""
        if self._ledger.sqlite_file is not None:
            sent = await self._outbox.ship_to_sqlite(
                self._ledger.sqlite_file, COLUMNS, self._batch_size, defaults=DEFAULTS
            )
            self.shipped += sent
            return sent
        batch = await self._outbox.pending(self._batch_size)
        if not batch:
            return 0
        await self._ledger.insert([event for _, event in batch])
        await self._outbox.acknowledge([seq for seq, _ in batch])
        self.shipped += len(batch)
        return len(batch)

    async def drain(self) -> None:
        while await self.ship_once():
            pass
        await self.count_backlog(force=True)

    async def count_backlog(self, *, force: bool = False) -> None:
        """Refresh :attr:`backlog`, at most once every ``BACKLOG_EVERY`` seconds
        unless ``force``; on the shipping thread, never the event loop's."""
        now = time.monotonic()
        if not force and now - self._counted_at < BACKLOG_EVERY:
            return
        self._counted_at = now
        try:
            self.backlog = await self._outbox.count()
        except Exception as exc:
            log.warning("could not count the outbox backlog: %s", exc)

    async def _loop(self) -> None:
        delay = self._interval
        while True:
            try:
                sent = await self.ship_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                delay = min(max(delay * 2, self._interval), 5.0)
                log.warning("shipping usage events failed (retry in %.1fs): %s", delay, exc)
                await self.count_backlog()
                await asyncio.sleep(delay)
                continue
            delay = self._interval
            await self.count_backlog()
            if sent < self._batch_size:
                await asyncio.sleep(self._interval)
