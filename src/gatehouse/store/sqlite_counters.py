"""The counter backend for several workers on one host without Redis.

``gatehouse serve --workers N`` runs N processes; in-process counters would
let each of them grant a key's whole limit, budget or failed-login allowance.
Without ``store.redis_url`` the workers share a SQLite file in the data
directory instead (``counters.db``), with the rules of
:mod:`gatehouse.store.counters`.

Each admission is one write transaction: the workers take an exclusive
``flock`` on a lock file beside it first, polled every 50 µs at first (SQLite's
own busy handler sleeps a millisecond or more), and then read, decide and write
every claim. The journal is WAL without fsync: counters, like Redis's, need
not survive a power loss, but a worker killed mid-write never leaves a
half-written one. Each server run starts from an empty file but for
dashboard logouts (:func:`start_afresh`), as in-process counters start
empty: budgets are seeded from the ledger again, and neither a killed
worker's reservations nor a file damaged by a power loss outlive a restart.
The transaction is short (tens of microseconds) and runs on the event loop:
a thread hop would cost as much.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from gatehouse.store.counters import (
    Claim,
    CounterUnavailableError,
    Decision,
    Outcome,
    evaluate,
    expiry,
    require_seeded,
    settled,
)

log = logging.getLogger("gatehouse.store")

# In the data directory.
COUNTERS_FILE = "counters.db"
LOCK_WAIT_SECONDS = 2.0
# After one wait for the lock has timed out, the process fails admissions at
# once for this long rather than have each queued request wait its 2 s in turn
# on the event loop.
LOCK_BACKOFF_SECONDS = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    value REAL NOT NULL,
    expires REAL
) WITHOUT ROWID
"""
_UPSERT = (
    "INSERT INTO counters (key, value, expires) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires"
)


class SqliteCounters:
    """Counters in a SQLite file shared by the processes of one host."""

    # Expired rows are deleted by whichever process admits first after this long.
    SWEEP_SECONDS = 60.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._lock_fd = -1
        self._pid = 0
        self._swept_at = 0.0
        self._lock_stuck_until = 0.0

    def _open(self) -> sqlite3.Connection:
        # Opened on first use in the process that uses it: a connection or lock
        # inherited across fork would be shared with the parent.
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        if self._lock_fd >= 0 and self._pid == os.getpid():
            os.close(self._lock_fd)  # its connection was closed (_roll_back)
            self._lock_fd = -1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            with _locked(lock_fd):
                _owner_only(self.path)
                connection = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=LOCK_WAIT_SECONDS,
                )
                try:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.execute("PRAGMA synchronous=OFF")
                    connection.execute(_SCHEMA)
                except BaseException:
                    connection.close()
                    raise
        except BaseException:
            os.close(lock_fd)
            raise
        self._connection, self._lock_fd, self._pid = connection, lock_fd, os.getpid()
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if time.monotonic() < self._lock_stuck_until:
            raise CounterUnavailableError(
                f"{self.path}: the counters' lock was held for over {LOCK_WAIT_SECONDS} s "
                "a moment ago"
            )
        try:
            connection = self._open()
            with _locked(self._lock_fd):
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                    connection.execute("COMMIT")
                except BaseException:
                    self._roll_back(connection)
                    raise
        except (sqlite3.Error, OSError) as exc:
            if isinstance(exc, _LockHeldError) or _busy(exc):
                # Held too long: by a stopped worker (the flock), or by another
                # SQLite client of the file (its write lock: the sqlite3 shell).
                self._lock_stuck_until = time.monotonic() + LOCK_BACKOFF_SECONDS
            raise CounterUnavailableError(f"{self.path}: {exc}") from exc

    def _roll_back(self, connection: sqlite3.Connection) -> None:
        """End a failed transaction, a failed COMMIT's included: SQLite may leave
        that one open (a full disk), holding the write lock every worker needs.
        A connection that cannot roll back is closed, which ends it too."""
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if connection.in_transaction:
            connection.close()
            self._connection = None  # the next transaction opens another

    def _read(
        self, connection: sqlite3.Connection, keys: Sequence[str], now: float
    ) -> list[float | None]:
        """The live value of each key, ``None`` for a missing or expired one."""
        marks = ",".join("?" * len(keys))
        found: dict[str, float] = {
            key: value
            for key, value, expires in connection.execute(
                f"SELECT key, value, expires FROM counters WHERE key IN ({marks})", keys
            )
            if expires is None or expires > now
        }
        return [found.get(key) for key in keys]

    async def admit(self, claims: Sequence[Claim], now: float) -> Decision:
        with self._transaction() as connection:
            stored = self._read(connection, [claim.key for claim in claims], now)
            require_seeded(claims, stored)  # raising rolls the transaction back
            outcomes: list[Outcome] = []
            states: list[float] = []
            allowed = True
            for claim, value in zip(claims, stored, strict=True):
                outcome, state = evaluate(claim, value or 0.0, now)
                allowed = allowed and outcome.allowed
                outcomes.append(outcome)
                states.append(state)
            if allowed:
                rows = []
                for claim, state in zip(claims, states, strict=True):
                    ttl = expiry(claim, state, now)
                    rows.append((claim.key, state, None if ttl is None else now + ttl))
                connection.executemany(_UPSERT, rows)
            # Either way: a clock set back must not hold the sweep off until it is back.
            if abs(now - self._swept_at) >= self.SWEEP_SECONDS:
                connection.execute(
                    "DELETE FROM counters WHERE expires IS NOT NULL AND expires <= ?", (now,)
                )
                self._swept_at = now
        return Decision(allowed, tuple(outcomes))

    async def settle(self, claims: Sequence[Claim], deltas: Sequence[float], now: float) -> None:
        moved = [(claim, delta) for claim, delta in zip(claims, deltas, strict=True) if delta]
        if not moved:
            return
        with self._transaction() as connection:
            stored = self._read(connection, [claim.key for claim, _ in moved], now)
            connection.executemany(
                "UPDATE counters SET value = ? WHERE key = ?",
                [
                    (settled(claim, value, delta), claim.key)
                    for (claim, delta), value in zip(moved, stored, strict=True)
                    if value is not None
                ],
            )

    async def seed(self, key: str, value: float, ttl: float) -> None:
        now = time.time()
        with self._transaction() as connection:
            if self._read(connection, [key], now) == [None]:
                connection.execute(_UPSERT, (key, value, now + ttl if ttl > 0 else None))

    async def probe(self) -> str:
        """The ``/readyz`` check: the file opens and its write lock can be had
        now; raises :class:`CounterUnavailableError` saying why not."""
        with self._transaction() as connection:
            connection.execute("SELECT 1 FROM counters LIMIT 1").fetchall()
        return "writable"

    async def close(self) -> None:
        if self._pid == os.getpid():
            if self._connection is not None:
                self._connection.close()
            if self._lock_fd >= 0:  # also when _roll_back dropped the connection
                os.close(self._lock_fd)
        self._connection, self._lock_fd = None, -1


def start_afresh(path: Path, *, keep: Sequence[str] = ()) -> None:
    """Empty what an earlier server run left at ``path``, before any worker
    opens it, but for the live rows whose keys start with one of ``keep``
    (dashboard logouts, which must outlive a restart). A file that cannot be
    read that way (damaged, not a database) is removed with its -wal and -shm
    files. The lock file stays: it holds nothing."""
    if not path.exists():
        return
    kept = " OR ".join(["instr(key, ?) = 1"] * len(keep)) or "0"  # starts with
    try:
        with closing(sqlite3.connect(path, isolation_level=None)) as connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                f"DELETE FROM counters WHERE NOT ({kept}) "
                "OR (expires IS NOT NULL AND expires <= ?)",
                [*keep, time.time()],
            )
            connection.execute("COMMIT")
        return
    except sqlite3.Error as exc:
        log.warning("%s could not be read (%s): starting from an empty one", path, exc)
    for file in _files(path):
        file.unlink(missing_ok=True)


def _files(path: Path) -> tuple[Path, Path, Path]:
    """The database at ``path`` and the -wal and -shm files SQLite keeps beside it."""
    return path, Path(f"{path}-wal"), Path(f"{path}-shm")


def _busy(exc: BaseException) -> bool:
    """Whether SQLite gave up waiting for another connection's lock on the file."""
    primary = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # extended codes keep it in the low byte
    return primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class _LockHeldError(OSError):
    """Another process held the counters' lock for over :data:`LOCK_WAIT_SECONDS`."""


def _owner_only(path: Path) -> None:
    """Make the database file, and what an earlier run left of its -wal and -shm,
    readable by the owner only. Created so before SQLite opens it: SQLite gives
    the -wal and -shm files it creates the database file's mode, and the log
    holds the counters' keys (client addresses, key ids) until a checkpoint."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in _files(path):
        try:
            mode = file.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(file, 0o600)


@contextmanager
def _locked(fd: int) -> Iterator[None]:
    """Hold the exclusive lock on ``fd``. A holder keeps it for tens of
    microseconds, so a waiter polls, more slowly as it waits; one that cannot
    have it within :data:`LOCK_WAIT_SECONDS` (another worker stopped while
    holding it) gets a :class:`_LockHeldError`, which admission reports as the
    counter store being unavailable, rather than blocking its event loop for
    ever."""
    # By the clock: on a loaded host a sleep lasts longer than asked.
    delay, deadline = 0.00005, time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise _LockHeldError(
                    f"the counters' lock was held for over {LOCK_WAIT_SECONDS} s"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.002)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
