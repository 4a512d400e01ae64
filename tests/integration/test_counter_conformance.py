"""The counter conformance suite: the memory, SQLite and Redis backends must agree.

Each backend subclasses :class:`CounterConformance` and provides ``counters``.
Times are passed in, so nothing sleeps.
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from gatehouse.store import sqlite_counters
from gatehouse.store.counters import (
    UNLIMITED,
    Claim,
    Counters,
    CounterUnavailableError,
    CounterUnseededError,
    MemoryCounters,
)
from gatehouse.store.redis_counters import RedisCounters
from gatehouse.store.sqlite_counters import SqliteCounters, start_afresh

from ..services import Redis

NOW = 1_780_000_000.0


def unique(name: str) -> str:
    return f"{name}:{uuid.uuid4().hex[:8]}"


@contextmanager
def lock_held_elsewhere(store: Path) -> Iterator[None]:
    """The counters' lock held as by another worker stopped while holding it (a
    separate open file description: flock locks conflict between them even in
    one process)."""
    holder = os.open(f"{store}.lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(holder)


@contextmanager
def sqlite_write_held_elsewhere(store: Path) -> Iterator[None]:
    """SQLite's write lock on the file held by another client (an operator's
    sqlite3 shell in a transaction), not the counters' own lock."""
    outside = sqlite3.connect(store, isolation_level=None)
    outside.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        outside.execute("ROLLBACK")
        outside.close()


class CounterConformance:
    async def test_rate_allows_exactly_the_burst_then_refills_continuously(
        self, counters: Counters
    ) -> None:
        claim = Claim("rate", unique("rpm"), 5, 1, 60.0)
        remaining = []
        for _ in range(5):
            decision = await counters.admit([claim], NOW)
            assert decision.allowed
            remaining.append(decision.outcomes[0].remaining)
        assert remaining == [4, 3, 2, 1, 0]
        denied = await counters.admit([claim], NOW)
        assert not denied.allowed
        assert denied.denied() == 0
        assert denied.outcomes[0].retry_after == pytest.approx(12.0)
        assert not (await counters.admit([claim], NOW + 11.9)).allowed
        assert (await counters.admit([claim], NOW + 12.0)).allowed
        assert not (await counters.admit([claim], NOW + 12.0)).allowed

    async def test_rate_cost_and_settle(self, counters: Counters) -> None:
        claim = Claim("rate", unique("tpm"), 1000, 800, 60.0)
        assert (await counters.admit([claim], NOW)).allowed
        assert not (await counters.admit([claim], NOW)).allowed
        # The call used 100 tokens, not 800: the difference comes back.
        await counters.settle([claim], [-700], NOW)
        again = await counters.admit([claim], NOW)
        assert again.allowed
        assert again.outcomes[0].remaining == 100

    async def test_admission_is_all_or_nothing(self, counters: Counters) -> None:
        roomy = Claim("rate", unique("roomy"), 10, 1, 60.0)
        full = Claim("quota", unique("budget"), 1.0, 0.6, 0.0)
        assert (await counters.admit([roomy, full], NOW)).allowed
        decision = await counters.admit([roomy, full], NOW)
        assert not decision.allowed
        assert decision.denied() == 1
        # The denied request took nothing from the claim that had room.
        assert (await counters.admit([roomy], NOW)).outcomes[0].remaining == 8

    async def test_gauge_goes_up_and_down(self, counters: Counters) -> None:
        gauge = Claim("gauge", unique("parallel"), 2, 1, 600.0)
        assert (await counters.admit([gauge], NOW)).allowed
        assert (await counters.admit([gauge], NOW)).allowed
        assert not (await counters.admit([gauge], NOW)).allowed
        await counters.settle([gauge], [-1], NOW)
        assert (await counters.admit([gauge], NOW)).allowed

    async def test_quota_reserves_and_settles(self, counters: Counters) -> None:
        budget = Claim("quota", unique("spend"), 10.0, 4.0, 86400.0)
        first = await counters.admit([budget], NOW)
        assert first.outcomes[0].remaining == pytest.approx(6.0)
        assert first.outcomes[0].reset == 86400.0
        await counters.settle([budget], [-3.0], NOW)  # cost 1 of the 4 reserved
        assert (await counters.admit([budget], NOW)).outcomes[0].level == pytest.approx(5.0)
        assert (await counters.admit([budget], NOW)).allowed  # 9
        denied = await counters.admit([budget], NOW)
        assert not denied.allowed
        assert denied.outcomes[0].remaining == pytest.approx(1.0)

    async def test_unlimited_quota_only_counts(self, counters: Counters) -> None:
        soft = Claim("quota", unique("soft"), UNLIMITED, 5.0, 0.0)
        for _ in range(3):
            decision = await counters.admit([soft], NOW)
        assert decision.allowed
        assert math.isinf(decision.outcomes[0].remaining)
        assert decision.outcomes[0].level == pytest.approx(15.0)

    async def test_seed_sets_only_a_missing_value(self, counters: Counters) -> None:
        key = unique("seeded")
        await counters.seed(key, 7.0, 3600)
        await counters.seed(key, 1.0, 3600)
        decision = await counters.admit([Claim("quota", key, 10.0, 2.0, 3600)], NOW)
        assert decision.outcomes[0].level == pytest.approx(9.0)

    async def test_a_spend_claim_needs_its_seed_and_refuses_to_start_from_zero(
        self, counters: Counters
    ) -> None:
        # A budget's spend is seeded from the ledger; a store that lost it (Redis
        # restarted empty) must say so rather than count the budget from zero.
        rate = Claim("rate", unique("with-spend"), 10, 1, 60.0)
        spend = Claim("spend", unique("lost"), 10.0, 4.0, 3600.0)
        with pytest.raises(CounterUnseededError) as unseeded:
            await counters.admit([rate, spend], NOW)
        assert unseeded.value.keys == (spend.key,)
        # Nothing was written: the rate claim beside it took nothing either.
        assert (await counters.admit([rate], NOW)).outcomes[0].remaining == 9
        await counters.seed(spend.key, 7.0, 3600.0)
        denied = await counters.admit([rate, spend], NOW)
        assert not denied.allowed  # 7 spent + 4 reserved > 10
        assert denied.denied() == 1
        fits = await counters.admit([spend._replace(amount=3.0)], NOW)
        assert fits.allowed
        assert fits.outcomes[0].level == pytest.approx(10.0)  # counted from the seed

    async def test_concurrent_admissions_never_exceed_a_limit(self, counters: Counters) -> None:
        budget = Claim("quota", unique("race"), 50.0, 1.0, 0.0)
        rate = Claim("rate", unique("race-rpm"), 1000, 1, 60.0)
        decisions = await asyncio.gather(*(counters.admit([rate, budget], NOW) for _ in range(200)))
        assert sum(d.allowed for d in decisions) == 50


class TestMemoryCounters(CounterConformance):
    @pytest.fixture
    async def counters(self) -> AsyncIterator[Counters]:
        memory = MemoryCounters()
        yield memory
        await memory.close()


class TestSqliteCounters(CounterConformance):
    @pytest.fixture
    async def counters(self, tmp_path: Path) -> AsyncIterator[Counters]:
        shared = SqliteCounters(tmp_path / "counters.db")
        yield shared
        await shared.close()

    async def test_expired_rows_read_as_missing_and_are_swept(self, tmp_path: Path) -> None:
        shared = SqliteCounters(tmp_path / "counters.db")
        gauge = Claim("gauge", "parallel", 1, 1, 60.0)
        assert (await shared.admit([gauge], NOW)).allowed
        assert not (await shared.admit([gauge], NOW + 59)).allowed
        # A worker killed mid-call never settles; its gauge expires.
        assert (await shared.admit([gauge], NOW + 61)).allowed
        await shared.admit([Claim("rate", "other", 10, 1, 60.0)], NOW + 500)
        with sqlite3.connect(tmp_path / "counters.db") as db:
            assert db.execute("SELECT key FROM counters").fetchall() == [("other",)]
        await shared.close()

    async def test_a_clock_set_back_does_not_stop_the_sweep(self, tmp_path: Path) -> None:
        # A clock an hour fast, then corrected: what is written after must still
        # be swept within a minute, not once the clock is back where it was.
        shared = SqliteCounters(tmp_path / "counters.db")
        await shared.admit([Claim("rate", "fast", 10, 1, 60.0)], NOW + 3600)
        await shared.admit([Claim("gauge", "parallel", 1, 1, 60.0)], NOW)
        await shared.admit([Claim("rate", "later", 10, 1, 60.0)], NOW + 120)
        with sqlite3.connect(tmp_path / "counters.db") as db:
            keys = {key for (key,) in db.execute("SELECT key FROM counters")}
        assert keys == {"fast", "later"}
        await shared.close()

    async def test_an_unwritable_file_is_an_error_not_a_silent_pass(self, tmp_path: Path) -> None:
        from gatehouse.store.counters import CounterUnavailableError

        (tmp_path / "counters.db").mkdir()  # a folder where the file should be
        broken = SqliteCounters(tmp_path / "counters.db")
        with pytest.raises(CounterUnavailableError):
            await broken.admit([Claim("rate", "x", 1, 1, 60.0)], NOW)
        await broken.close()

    async def test_a_lock_held_too_long_is_an_error_not_a_frozen_loop(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sqlite_counters, "LOCK_WAIT_SECONDS", 0.2)
        monkeypatch.setattr(sqlite_counters, "LOCK_BACKOFF_SECONDS", 0.0)
        shared = SqliteCounters(tmp_path / "counters.db")
        claim = Claim("rate", "x", 10, 1, 60.0)
        assert (await shared.admit([claim], NOW)).allowed
        with (
            lock_held_elsewhere(tmp_path / "counters.db"),
            pytest.raises(CounterUnavailableError, match="lock was held"),
        ):
            await shared.admit([claim], NOW)
        assert (await shared.admit([claim], NOW)).outcomes[0].remaining == 8
        await shared.close()

    @pytest.mark.parametrize(
        ("hold", "refusal"),
        [(lock_held_elsewhere, "lock was held"), (sqlite_write_held_elsewhere, "locked")],
        ids=["a stopped worker", "another sqlite client"],
    )
    async def test_after_one_wait_timed_out_the_queue_fails_at_once(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        hold: Callable[[Path], AbstractContextManager[None]],
        refusal: str,
    ) -> None:
        # Requests queued behind a stuck lock, ours or SQLite's, must not each
        # block the event loop for the whole wait in turn.
        monkeypatch.setattr(sqlite_counters, "LOCK_WAIT_SECONDS", 0.2)
        monkeypatch.setattr(sqlite_counters, "LOCK_BACKOFF_SECONDS", 0.5)
        shared = SqliteCounters(tmp_path / "counters.db")
        claim = Claim("rate", "x", 10, 1, 60.0)
        assert (await shared.admit([claim], NOW)).allowed
        with hold(tmp_path / "counters.db"):
            with pytest.raises(CounterUnavailableError, match=refusal):
                await shared.admit([claim], NOW)
            started = time.monotonic()
            for _ in range(5):
                with pytest.raises(CounterUnavailableError, match="a moment ago"):
                    await shared.admit([claim], NOW)
            assert time.monotonic() - started < 0.1
        await asyncio.sleep(0.5)
        assert (await shared.admit([claim], NOW)).outcomes[0].remaining == 8
        await shared.close()

    async def test_a_new_run_starts_from_empty_counters_but_for_logouts(
        self, tmp_path: Path
    ) -> None:
        # Budgets are seeded from the ledger when a server starts: a row of an
        # earlier run (spend made since without the file, a killed worker's
        # reservation) must not stand in its way. A logout must stay one.
        store = tmp_path / "counters.db"
        earlier = SqliteCounters(store)
        now = time.time()
        await earlier.seed("budget", 10.0, 3600.0)
        await earlier.admit([Claim("quota", "budget", 100, 60, 3600.0)], now)
        for key, ttl in (("ui-logout:live", 3600.0), ("ui-logout:over", 1.0)):
            await earlier.admit([Claim("quota", key, UNLIMITED, 1, ttl)], now - 10)
        await earlier.close()
        start_afresh(store, keep=["ui-logout:"])
        assert not Path(f"{store}-wal").exists()  # checkpointed and closed
        with sqlite3.connect(store) as db:
            assert db.execute("SELECT key FROM counters").fetchall() == [("ui-logout:live",)]
        later = SqliteCounters(store)
        await later.seed("budget", 140.0, 3600.0)
        decision = await later.admit([Claim("quota", "budget", 100, 10, 3600.0)], time.time())
        assert not decision.allowed
        await later.close()

    async def test_a_damaged_file_is_replaced_at_the_next_run(self, tmp_path: Path) -> None:
        store = tmp_path / "counters.db"
        store.write_bytes(b"\0" * 4096)  # a first page zeroed, as by a power loss
        Path(f"{store}-wal").write_bytes(b"torn")
        start_afresh(store, keep=["ui-logout:"])
        assert not store.exists()
        assert not Path(f"{store}-wal").exists()
        fresh = SqliteCounters(store)
        assert (await fresh.admit([Claim("rate", "x", 10, 1, 60.0)], NOW)).allowed
        await fresh.close()

    async def test_the_lock_wait_is_bounded_in_time_not_in_sleeps_asked(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # On a loaded host a sleep lasts longer than asked: the bound is the clock's.
        class SlowSleeps:
            elapsed = 0.0

            def monotonic(self) -> float:
                return self.elapsed

            def sleep(self, seconds: float) -> None:
                self.elapsed += 10 * seconds

            def time(self) -> float:
                return NOW

        shared = SqliteCounters(tmp_path / "counters.db")
        claim = Claim("rate", "x", 10, 1, 60.0)
        assert (await shared.admit([claim], NOW)).allowed
        clock = SlowSleeps()
        monkeypatch.setattr(sqlite_counters, "time", clock)
        with (
            lock_held_elsewhere(tmp_path / "counters.db"),
            pytest.raises(CounterUnavailableError, match="lock was held"),
        ):
            await shared.admit([claim], NOW)
        limit = sqlite_counters.LOCK_WAIT_SECONDS
        assert limit <= clock.elapsed <= limit + 10 * 0.002
        await shared.close()

    @pytest.mark.parametrize("rollback_fails", [False, True])
    async def test_a_failed_commit_leaves_no_transaction_open(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rollback_fails: bool
    ) -> None:
        # A full disk can fail the COMMIT itself (the log is written then), and
        # SQLite may leave the transaction open: its write lock would then stay
        # with this worker, and every later admission on the host fail.
        from gatehouse.store import sqlite_counters
        from gatehouse.store.counters import CounterUnavailableError

        monkeypatch.setattr(sqlite_counters, "LOCK_WAIT_SECONDS", 0.2)
        shared = SqliteCounters(tmp_path / "counters.db")
        other = SqliteCounters(tmp_path / "counters.db")
        claim = Claim("rate", "x", 10, 1, 60.0)
        assert (await shared.admit([claim], NOW)).allowed
        real = shared._open()

        class DiskFullOnCommit:
            def __init__(self) -> None:
                self.failing = {"COMMIT", "ROLLBACK"} if rollback_fails else {"COMMIT"}

            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
                if sql in self.failing:
                    self.failing.remove(sql)
                    raise sqlite3.OperationalError("database or disk is full")
                return real.execute(sql, *args)

        monkeypatch.setattr(shared, "_connection", DiskFullOnCommit())
        with pytest.raises(CounterUnavailableError, match="disk is full"):
            await shared.admit([claim], NOW)
        # Space is back: both this worker and another one admit again.
        assert (await other.admit([claim], NOW)).outcomes[0].remaining == 8
        assert (await shared.admit([claim], NOW)).outcomes[0].remaining == 7
        await other.close()
        await shared.close()

    async def test_closing_after_a_dropped_connection_closes_the_lock_file(
        self, tmp_path: Path
    ) -> None:
        shared = SqliteCounters(tmp_path / "counters.db")
        assert (await shared.admit([Claim("rate", "x", 10, 1, 60.0)], NOW)).allowed
        lock_fd = shared._lock_fd
        shared._open().close()
        shared._connection = None  # as _roll_back leaves it when ROLLBACK fails
        await shared.close()
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(lock_fd)

    async def test_every_file_of_the_store_is_the_owners_only(self, tmp_path: Path) -> None:
        # The write-ahead log holds the counters' keys (client addresses, key ids)
        # until a checkpoint: SQLite gives it and -shm the database file's mode.
        shared = SqliteCounters(tmp_path / "counters.db")
        await shared.admit([Claim("rate", "authfail:api:192.0.2.1", 10, 1, 60.0)], NOW)
        names = {"counters.db", "counters.db-wal", "counters.db-shm", "counters.db.lock"}
        assert {path.name for path in tmp_path.iterdir()} == names
        modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()}
        assert modes == dict.fromkeys(names, 0o600)
        await shared.close()

    async def test_a_file_it_cannot_make_private_leaks_no_descriptor(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from gatehouse.store.counters import CounterUnavailableError

        def refused(path: object, mode: int) -> None:
            raise PermissionError(f"not the owner of {path}")

        monkeypatch.setattr(os, "chmod", refused)
        (tmp_path / "counters.db").touch(mode=0o644)
        broken = SqliteCounters(tmp_path / "counters.db")
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(3):
            with pytest.raises(CounterUnavailableError, match="not the owner"):
                await broken.admit([Claim("rate", "x", 1, 1, 60.0)], NOW)
        assert len(os.listdir("/proc/self/fd")) == before
        await broken.close()


_RACER = """
import asyncio, sys
from pathlib import Path
from gatehouse.store.counters import Claim
from gatehouse.store.sqlite_counters import SqliteCounters

async def main():
    counters = SqliteCounters(Path(sys.argv[1]))
    budget = Claim("quota", "race", 50.0, 1.0, 0.0)
    rate = Claim("rate", "race-rpm", 1000, 1, 60.0)
    granted = 0
    for _ in range(100):
        granted += (await counters.admit([rate, budget], 1_780_000_000.0)).allowed
    print(granted)

asyncio.run(main())
"""


def test_processes_sharing_a_sqlite_file_never_exceed_a_limit(tmp_path: Path) -> None:
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(tmp_path / "counters.db")],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    granted = [int(racer.communicate(timeout=120)[0]) for racer in racers]
    assert sum(granted) == 50, granted


class TestRedisCounters(CounterConformance):
    @pytest.fixture
    async def counters(self, redis_server: Redis) -> AsyncIterator[Counters]:
        redis = RedisCounters(redis_server.url, prefix=f"{uuid.uuid4().hex[:6]}:")
        yield redis
        await redis.close()

    async def test_an_unreachable_redis_is_an_error_not_a_silent_pass(self) -> None:
        from gatehouse.store.counters import CounterUnavailableError

        from ..services import free_port

        dead = RedisCounters(f"redis://127.0.0.1:{free_port()}/0")
        with pytest.raises(CounterUnavailableError):
            await dead.admit([Claim("rate", "x", 1, 1, 60.0)], NOW)
        await dead.close()


async def test_redis_counters_survive_a_flushed_script_cache(redis_server: Redis) -> None:
    redis = RedisCounters(redis_server.url, prefix=f"{uuid.uuid4().hex[:6]}:")
    claim = Claim("rate", "after-flush", 2, 1, 60.0)
    assert (await redis.admit([claim], NOW)).allowed
    await redis._redis.script_flush()  # what a Redis restart does to loaded scripts
    assert (await redis.admit([claim], NOW)).allowed
    assert not (await redis.admit([claim], NOW)).allowed
    await redis.close()
