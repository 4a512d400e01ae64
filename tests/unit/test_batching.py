"""MicroBatcher with a manual clock: windows, size limits, errors, cancellation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gatehouse.providers.batching import MicroBatcher


class ManualClock:
    """Time that moves only when the test says so; ``sleep`` waits for it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for deadline, future in self._sleepers:
            if deadline <= self.now and not future.done():
                future.set_result(None)
        await settle()


async def settle() -> None:
    """Let every runnable task (and a batch run in a thread) make progress."""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)  # a thread hop: the run itself is in a worker thread
    for _ in range(20):
        await asyncio.sleep(0)


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, items: list[str]) -> list[str]:
        with self.lock:
            self.batches.append(list(items))
        if self.fail_on in items:
            raise ValueError(f"cannot embed {self.fail_on}")
        return [item.upper() for item in items]


def make(recorder: Recorder, clock: ManualClock, *, window: float = 0.002, max_items: int = 8):
    return MicroBatcher(
        recorder, window=window, max_items=max_items, clock=clock, sleep=clock.sleep
    )


async def test_requests_within_the_window_share_one_batch_and_get_their_own_results() -> None:
    clock, recorder = ManualClock(), Recorder()
    batcher = make(recorder, clock)
    first = asyncio.create_task(batcher.submit(["a", "b"]))
    await settle()
    await clock.advance(0.001)
    second = asyncio.create_task(batcher.submit(["c"]))
    await settle()
    assert recorder.batches == []  # the window is still open
    await clock.advance(0.001)
    assert await first == ["A", "B"]
    assert await second == ["C"]
    assert recorder.batches == [["a", "b", "c"]]


async def test_a_request_after_the_window_closed_goes_in_the_next_batch() -> None:
    clock, recorder = ManualClock(), Recorder()
    batcher = make(recorder, clock)
    first = asyncio.create_task(batcher.submit(["a"]))
    await settle()
    await clock.advance(0.002)
    assert await first == ["A"]
    second = asyncio.create_task(batcher.submit(["b"]))
    await settle()
    await clock.advance(0.002)
    assert await second == ["B"]
    assert recorder.batches == [["a"], ["b"]]
    assert batcher.batches_run == 2


async def test_a_lone_request_runs_without_waiting_for_the_window() -> None:
    clock, recorder = ManualClock(), Recorder()
    batcher = make(recorder, clock, window=10.0)
    result = await asyncio.wait_for(batcher.submit(["a"], wait=False), timeout=5)
    assert result == ["A"]
    assert clock.now == 0.0
    # The next request that may wait for company waits for the window again.
    later = asyncio.create_task(batcher.submit(["b"]))
    await settle()
    assert recorder.batches == [["a"]]
    await clock.advance(10.0)
    assert await later == ["B"]


async def test_reaching_the_size_limit_runs_the_batch_without_waiting() -> None:
    clock, recorder = ManualClock(), Recorder()
    batcher = make(recorder, clock, window=10.0, max_items=4)
    results = await asyncio.wait_for(
        asyncio.gather(batcher.submit(["a", "b"]), batcher.submit(["c", "d"])), timeout=5
    )
    assert results == [["A", "B"], ["C", "D"]]
    assert recorder.batches == [["a", "b", "c", "d"]]
    assert clock.now == 0.0


async def test_a_request_larger_than_the_limit_runs_alone_and_whole() -> None:
    clock, recorder = ManualClock(), Recorder()
    batcher = make(recorder, clock, window=10.0, max_items=2)
    result = await asyncio.wait_for(batcher.submit(["a", "b", "c"]), timeout=5)
    assert result == ["A", "B", "C"]
    assert recorder.batches == [["a", "b", "c"]]


async def test_requests_that_would_overflow_a_batch_wait_for_the_next() -> None:
    clock, recorder = ManualClock(), Recorder()
    batcher = make(recorder, clock, window=0.002, max_items=4)
    first = asyncio.create_task(batcher.submit(["a", "b", "c"]))
    second = asyncio.create_task(batcher.submit(["d", "e"]))
    assert await asyncio.wait_for(first, timeout=5) == ["A", "B", "C"]
    await clock.advance(0.002)
    assert await asyncio.wait_for(second, timeout=5) == ["D", "E"]
    assert recorder.batches == [["a", "b", "c"], ["d", "e"]]


async def test_a_failing_batch_fails_its_requests_only() -> None:
    clock, recorder = ManualClock(), Recorder(fail_on="bad")
    batcher = make(recorder, clock)
    first = asyncio.create_task(batcher.submit(["ok"]))
    second = asyncio.create_task(batcher.submit(["bad"]))
    await settle()
    await clock.advance(0.002)
    for task in (first, second):
        with pytest.raises(ValueError, match="cannot embed bad"):
            await task
    later = asyncio.create_task(batcher.submit(["fine"]))
    await settle()
    await clock.advance(0.002)
    assert await later == ["FINE"]


async def test_a_cancelled_caller_is_left_out_of_the_batch() -> None:
    clock, recorder = ManualClock(), Recorder()
    batcher = make(recorder, clock)
    gone = asyncio.create_task(batcher.submit(["gone"]))
    kept = asyncio.create_task(batcher.submit(["kept"]))
    await settle()
    gone.cancel()
    await clock.advance(0.002)
    assert await kept == ["KEPT"]
    assert recorder.batches == [["kept"]]


async def test_empty_requests_return_at_once() -> None:
    clock, recorder = ManualClock(), Recorder()
    assert await make(recorder, clock).submit([]) == []
    assert recorder.batches == []


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        MicroBatcher(Recorder(), window=-1, max_items=1)
    with pytest.raises(ValueError, match="max_items"):
        MicroBatcher(Recorder(), window=0, max_items=0)
