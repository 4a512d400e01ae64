"""The durable local outbox: usage events land here before a response completes.

One SQLite file in WAL mode, owned by one writer thread. Callers on the event
loop hand events over and await a future; the thread drains everything queued
since its last commit into one transaction (group commit), commits, and only
then resolves the futures. So a response that waited for its event survives
a kill -9 (WAL with ``synchronous=NORMAL`` loses nothing on a process crash),
and thousands of requests a second cost a few commits, not thousands.

The shipper reads (or, into a SQLite ledger, copies) pending events in id
order through a second connection on a thread of its own, niced (WAL readers
never block the writer), and deletes them once the ledger has them through
the writer thread. SQLite's automatic checkpoint is off on the writer: it
would run inside whichever commit crossed the threshold and stall every
response waiting on that commit. The shipper's connection checkpoints
instead, passively, after each delete, so the WAL stays small without a
commit ever waiting for it. Both were, in turn, the whole of the gateway's
p99 at one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from gatehouse.core.records import UsageEvent

log = logging.getLogger("gatehouse.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
)
"""
_STOP = object()
_INSERT = "INSERT OR IGNORE INTO outbox (event_id, body) VALUES (?, ?)"
SHIPPING_NICENESS = 10

Event = UsageEvent | Mapping[str, Any]
"""A usage event: the record, or its fields as a plain row (what metering
builds, since it is cheaper than the model on the hot path)."""
_T = TypeVar("_T")


class OutboxClosedError(RuntimeError):
    """The outbox was closed; no event can be appended."""


class Outbox:
    """Append usage events durably; fetch and acknowledge them for shipping."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._buffer: list[tuple[str, str]] = []
        self._inline: sqlite3.Connection | None = None  # the event loop's own
        # One future per append waiting for the next commit; the first of a
        # turn of the event loop schedules the commit.
        self._waiters: list[asyncio.Future[None]] = []
        # The shipper's side: reads, copies and checkpoints on a thread of its
        # own at a low scheduling priority (see _background_priority).
        self._reader: sqlite3.Connection | None = None
        self._shipping = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="gatehouse-shipping",
            initializer=_background_priority,
        )

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="gatehouse-outbox", daemon=True
        )
        self._thread.start()
        ready.result()

    async def append(self, event: Event) -> None:
        """Return once ``event`` is committed to the outbox file.

        Events appended in one turn of the event loop are committed together,
        so a request pays a list append and an await. Each waits on a future
        of its own: a request cancelled while waiting cancels only that (its
        event is committed all the same), never the commit its batch waits for.
        """
        if self._closed or self._thread is None:
            # Not open (the gateway was never started) or closed: fail now,
            # where waiting for a writer thread that does not run would hang.
            raise OutboxClosedError("the outbox is not open")
        self._buffer.append(_encode(event))
        waiters = self._waiters
        if waiters:
            waiter: asyncio.Future[None] = waiters[0].get_loop().create_future()
        else:
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            loop.call_soon(self._flush, loop)
        waiters.append(waiter)
        await waiter

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        rows, waiters = self._buffer, self._waiters
        self._buffer, self._waiters = [], []
        if self._commit_here(rows):
            for waiter in waiters:
                if not waiter.done():  # a cancelled request's is
                    waiter.set_result(None)
            return
        done: Future[None] = Future()
        self._queue.put(("batch", rows, done))

        def wake(_: Future[None]) -> None:
            loop.call_soon_threadsafe(_settle, waiters, done)

        done.add_done_callback(wake)

    def _commit_here(self, rows: list[tuple[str, str]]) -> bool:
        """Commit ``rows`` on the event loop's thread if the file's write lock is
        free right now; False leaves them to the writer thread.

        A small WAL commit without fsync takes tens of microseconds, less than
        handing the batch to another thread and being woken back: two thread
        switches per commit, each of which can wait for a time slice on a busy
        machine, which was most of the gateway's p99 at one connection. The
        lock is only tried, never waited for: when another process sharing the
        outbox, or the writer thread's delete, holds it, the writer thread
        (which may wait) takes the batch instead.
        """
        conn = self._inline
        if conn is None:
            conn = self._inline = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the shipper checkpoints
            conn.execute("PRAGMA busy_timeout=0")
        try:
            _insert(conn, rows)
        except sqlite3.Error:
            # Locked (the writer thread waits for it), or failed: the writer
            # thread tries again and reports a lasting failure.
            return False
        return True

    def submit(self, event: Event) -> Future[None]:
        """Queue ``event``; the future resolves after its commit. Usable off the loop."""
        if self._closed:
            raise OutboxClosedError("the outbox is closed")
        done: Future[None] = Future()
        self._queue.put(("batch", [_encode(event)], done))
        return done

    async def pending(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` unshipped events (as the ledger's row dicts), oldest first,
        with their sequence numbers. Not re-validated: this process wrote them."""
        rows = await self._read(_fetch, limit)
        return [(seq, orjson.loads(body)) for seq, body in rows]

    async def acknowledge(self, sequences: Sequence[int]) -> None:
        """Forget events the ledger now holds."""
        await self._forget(_delete, list(sequences))

    async def ship_to_sqlite(
        self,
        ledger: Path,
        columns: Sequence[str],
        limit: int,
        *,
        defaults: Mapping[str, int] | None = None,
    ) -> int:
        """Copy up to ``limit`` pending events into the ``ledger_events`` table of
        the SQLite file ``ledger`` and forget them; returns how many. A column
        an event lacks is NULL, or its value in ``defaults`` (an event written
        by an older release).

        The copy is one ``INSERT ... SELECT`` inside SQLite, each column pulled
        out of the stored JSON with ``json_extract``: no row passes through
        Python, so shipping costs the event loop nothing per event. Ids the
        ledger already holds are skipped, which makes a repeat harmless.
        """
        last = await self._read(_copy_into, ledger, tuple(columns), limit, dict(defaults or {}))
        if last is None:
            return 0
        shipped: int = await self._forget(_delete_through, last)
        return shipped

    async def _forget(self, delete: Callable[..., Any], which: Any) -> Any:
        """Delete shipped events through the writer, then fold the WAL back into
        the file from the shipping thread."""
        result = await self._call(delete, which)
        await self._read(_checkpoint)
        return result

    async def count(self) -> int:
        return await self._read(_count)

    def close(self) -> None:
        """Finish every queued write, then stop the writer thread."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        self._shipping.submit(self._close_reader).result()
        self._shipping.shutdown()

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def _read(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._closed:
            raise OutboxClosedError("the outbox is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._shipping, self._read_sync, function, *args)

    def _read_sync(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._reader is None:
            self._reader = sqlite3.connect(self.path, isolation_level=None)
            self._reader.execute("PRAGMA busy_timeout=10000")
        return function(self._reader, *args)

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        if self._closed:
            raise OutboxClosedError("the outbox is closed")
        done: Future[Any] = Future()
        self._queue.put(("call", function, args, done))
        return await asyncio.wrap_future(done)

    # -- the writer thread --

    def _run(self, ready: Future[None]) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the reader checkpoints
            # Several worker processes may share a data directory's outbox.
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            while True:
                batch = [self._queue.get()]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(item is _STOP for item in batch)
                self._handle_safely(conn, [item for item in batch if item is not _STOP])
                if stop:
                    # Drain anything queued after the stop marker too.
                    rest: list[Any] = []
                    while True:
                        try:
                            rest.append(self._queue.get_nowait())
                        except queue.Empty:
                            break
                    self._handle_safely(conn, [item for item in rest if item is not _STOP])
                    return
        finally:
            conn.close()

    def _handle_safely(self, conn: sqlite3.Connection, items: list[Any]) -> None:
        # The thread must outlive any one bad batch: every later request waits on it.
        try:
            self._handle(conn, items)
        except Exception:
            log.exception("outbox writer failed on a batch of %d item(s)", len(items))

    def _handle(self, conn: sqlite3.Connection, items: list[Any]) -> None:
        batches = [item for item in items if item[0] == "batch"]
        if batches:
            rows = [row for _, batch, _ in batches for row in batch]
            try:
                _insert(conn, rows)
            except sqlite3.Error as exc:
                log.error("outbox write of %d event(s) failed: %s", len(rows), exc)
                for *_, done in batches:
                    _resolve(done, None, error=exc)
            else:
                for *_, done in batches:
                    _resolve(done, None)
        for item in items:
            if item[0] != "call":
                continue
            _, function, args, done = item
            try:
                _resolve(done, function(conn, *args))
            except sqlite3.Error as exc:
                _resolve(done, None, error=exc)


def _insert(conn: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
    """Append ``rows`` in one transaction, or roll back and raise."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(_INSERT, rows)
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _encode(event: Event) -> tuple[str, str]:
    if isinstance(event, UsageEvent):
        return event.id, event.model_dump_json()
    return event["id"], orjson.dumps(event).decode()


def _background_priority() -> None:
    """Lower the calling thread's scheduling priority (Linux: threads have their
    own nice value).

    Shipping copies a batch every fraction of a second, milliseconds of CPU
    at a time; at normal priority that burst took a core from the request
    path and was the whole of the gateway's p99 at one connection. Niced, it
    runs on idle CPU first and still gets about a tenth of a busy machine,
    far more than shipping needs; the outbox holds events durably meanwhile.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SHIPPING_NICENESS)


def _settle(waiters: list[asyncio.Future[None]], done: Future[None]) -> None:
    error = done.exception()
    for waiter in waiters:
        if waiter.done():  # its request was cancelled
            continue
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(None)


def _resolve(done: Future[Any], result: Any, *, error: BaseException | None = None) -> None:
    """Settle a caller's future. A caller that gave up waiting (its request was
    cancelled) has cancelled it; its event is written all the same."""
    if not done.set_running_or_notify_cancel():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)


def _fetch(conn: sqlite3.Connection, limit: int) -> list[tuple[int, str]]:
    rows = conn.execute("SELECT seq, body FROM outbox ORDER BY seq LIMIT ?", (limit,))
    return [(int(seq), str(body)) for seq, body in rows]


def _delete(conn: sqlite3.Connection, sequences: list[int]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in sequences])
    conn.execute("COMMIT")


def _copy_into(
    conn: sqlite3.Connection,
    ledger: Path,
    columns: tuple[str, ...],
    limit: int,
    defaults: dict[str, int],
) -> int | None:
    """Insert the oldest ``limit`` events into the attached ledger; returns the
    last sequence number copied. Rows up to it are all committed: sequence
    numbers are handed out under the write lock, in commit order."""
    attached = {row[1] for row in conn.execute("PRAGMA database_list")}
    if "ledger" not in attached:
        conn.execute("ATTACH DATABASE ? AS ledger", (str(ledger),))
    row = conn.execute(
        "SELECT max(seq) FROM (SELECT seq FROM main.outbox ORDER BY seq LIMIT ?)", (limit,)
    ).fetchone()
    if row is None or row[0] is None:
        return None
    last = int(row[0])
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(
        f"ifnull(json_extract(body, '$.{c}'), {int(defaults[c])})"
        if c in defaults
        else f"json_extract(body, '$.{c}')"
        for c in columns
    )
    # One statement in autocommit mode: atomic, and it only reads the outbox
    # (a WAL snapshot), so appends go on while it runs. The WHERE clause is
    # what lets SQLite parse the upsert after a SELECT.
    conn.execute(
        f"INSERT INTO ledger.ledger_events ({names}) SELECT {values} "
        "FROM main.outbox WHERE seq <= ? ORDER BY seq ON CONFLICT (id) DO NOTHING",
        (last,),
    )
    return last


def _delete_through(conn: sqlite3.Connection, last: int) -> int:
    conn.execute("BEGIN IMMEDIATE")
    deleted = conn.execute("DELETE FROM outbox WHERE seq <= ?", (last,)).rowcount
    conn.execute("COMMIT")
    return int(deleted)


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def _checkpoint(conn: sqlite3.Connection) -> None:
    # PASSIVE never waits for the writer; the writer restarts the WAL from its
    # beginning once a checkpoint has caught up, so the file stops growing.
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
