"""The outbox: durable before the future resolves, group-committed, shipped exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gatehouse.core.records import UsageEvent
from gatehouse.store.database import Database, database_url
from gatehouse.store.ledger import LedgerStore
from gatehouse.store.outbox import Outbox, OutboxClosedError
from gatehouse.store.shipper import Shipper


def event(n: int) -> UsageEvent:
    return UsageEvent(
        id=f"evt-{n}",
        request_id=f"req-{n}",
        created_at=1_780_000_000.0 + n,
        principal="anonymous",
        endpoint="chat",
        model="m",
        status="ok",
        http_status=200,
        latency_ms=1.0,
    )


async def test_appended_events_survive_a_reopen_in_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.open()
    await asyncio.gather(*(outbox.append(event(n)) for n in range(500)))
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.db")
    reopened.open()
    pending = await reopened.pending(1000)
    assert [e["id"] for _, e in pending] == [f"evt-{n}" for n in range(500)]
    reopened.close()


async def test_a_waiter_that_gives_up_does_not_stop_the_writer(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.open()
    waiters = [asyncio.ensure_future(outbox.append(event(n))) for n in range(50)]
    await asyncio.sleep(0)  # every append has handed its event over
    for waiter in waiters[::2]:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await outbox.append(event(99))  # the writer thread is alive
    assert await outbox.count() == 51  # cancelled waiters' events were written all the same
    outbox.close()


async def test_the_shipper_ships_each_event_once_even_when_reshipped(tmp_path: Path) -> None:
    database = Database(database_url(None, tmp_path))
    await database.open()
    ledger = LedgerStore(database)
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.open()
    for n in range(30):
        await outbox.append(event(n))
    # A crash after the ledger insert but before the outbox delete: the same
    # events are shipped again after the restart.
    await ledger.insert([e for _, e in await outbox.pending(10)])
    shipper = Shipper(outbox, ledger, interval=0.01, batch_size=7)
    await shipper.drain()
    assert await outbox.count() == 0
    assert await ledger.count() == 30
    outbox.close()
    await database.close()


@pytest.mark.parametrize("inside_sqlite", [True, False], ids=["sqlite-copy", "python-insert"])
async def test_both_ways_of_shipping_store_the_same_rows(
    tmp_path: Path, inside_sqlite: bool
) -> None:
    database = Database(database_url(None, tmp_path))
    await database.open()
    if not inside_sqlite:
        database.sqlite_file = None  # as for PostgreSQL: rows go through Python
    ledger = LedgerStore(database)
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.open()
    full = event(1).model_copy(
        update={
            "key_id": "k1",
            "user": "ann",
            "team": "red",
            "org": "acme",
            "deployment": "m#0",
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "cached_tokens": 2,
            "cost_usd": 0.000123,
            "ttft_ms": 12.5,
            "cache_hit": True,
            "stream": True,
            "error": 'upstream said "no" \u2013 twice',
        }
    )
    sparse = event(2)
    await outbox.append(full)
    await outbox.append(sparse.model_dump())  # metering's plain-row form
    await Shipper(outbox, ledger, interval=0.01, batch_size=10).drain()
    assert await ledger.events() == [full, sparse]
    assert await outbox.count() == 0
    outbox.close()
    await database.close()


async def test_acknowledging_keeps_the_write_ahead_log_small(tmp_path: Path) -> None:
    # The writer never checkpoints (a checkpoint inside a commit stalls every
    # response waiting on it); acknowledging does, so the log is reused.
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.open()
    wal = tmp_path / "outbox.db-wal"
    sizes = []
    for cycle in range(20):
        await asyncio.gather(*(outbox.append(event(cycle * 200 + n)) for n in range(200)))
        pending = await outbox.pending(1000)
        await outbox.acknowledge([seq for seq, _ in pending])
        sizes.append(wal.stat().st_size)
    assert await outbox.count() == 0
    assert max(sizes[5:]) <= max(sizes[:5])  # bounded, not growing with every cycle
    outbox.close()


async def test_a_locked_outbox_file_hands_the_commit_to_the_writer_thread(
    tmp_path: Path,
) -> None:
    # Appends commit on the event loop when the write lock is free, and never
    # wait for it there: another process holding it sends them to the thread.
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.open()
    await outbox.append(event(1))  # committed in place
    other = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    waiting = asyncio.ensure_future(outbox.append(event(2)))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # the writer thread is waiting for the lock
    other.execute("COMMIT")
    await asyncio.wait_for(waiting, 5)
    assert [e["id"] for _, e in await outbox.pending(10)] == ["evt-1", "evt-2"]
    other.close()
    outbox.close()


async def test_an_outbox_never_opened_refuses_at_once(tmp_path: Path) -> None:
    """Appending before ``open`` (a gateway never started) fails instead of hanging."""
    outbox = Outbox(tmp_path / "outbox.db")
    with pytest.raises(OutboxClosedError, match="not open"):
        await asyncio.wait_for(outbox.append({"id": "evt-1"}), timeout=5)
