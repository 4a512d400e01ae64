"""Admission control: Little's law limits, a bounded FIFO queue with a deadline."""

from __future__ import annotations

import asyncio

import pytest

from gatehouse.core.errors import AdmissionTimeoutError, QueueFullError
from gatehouse.gateway.routing.capacity import Capacity, little_limit


def test_littles_law() -> None:
    assert little_limit(100, 0.25, headroom=1.0) == 25
    assert little_limit(100, 0.25, headroom=1.2) == 30
    assert little_limit(0.1, 0.01) == 1  # never below one


def admission(**kwargs: float) -> Capacity:
    params: dict[str, float] = {
        "max_in_flight": 2,
        "queue_size": 3,
        "queue_timeout": 5.0,
        "headroom": 1.0,
    }
    params.update(kwargs)
    return Capacity(target_rps=params.pop("target_rps", None), **params)  # type: ignore[arg-type]


async def test_admits_up_to_the_limit_then_queues_in_order() -> None:
    gate = admission()
    assert await gate.acquire() == 0.0
    assert await gate.acquire() == 0.0
    order: list[int] = []

    async def wait(i: int) -> None:
        await gate.acquire()
        order.append(i)

    waiters = [asyncio.create_task(wait(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert gate.queued == 3
    for _ in range(3):
        gate.release()
        await asyncio.sleep(0)
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2]
    assert gate.in_flight == 2


async def test_a_full_queue_refuses_at_once_with_retry_after() -> None:
    gate = admission(max_in_flight=1, queue_size=1)
    await gate.acquire()
    queued = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError) as caught:
        await gate.acquire()
    assert caught.value.http_status == 503
    assert caught.value.retry_after is not None
    gate.release()
    await queued
    assert gate.rejected == 1


async def test_waiting_past_the_deadline_is_a_503() -> None:
    gate = admission(max_in_flight=1, queue_timeout=0.05)
    await gate.acquire()
    with pytest.raises(AdmissionTimeoutError) as caught:
        await gate.acquire()
    assert caught.value.error_code == "admission_timeout"
    assert gate.queued == 0
    gate.release()
    assert gate.in_flight == 0


async def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    gate = admission(max_in_flight=1)
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.release()
    assert (gate.in_flight, gate.queued) == (0, 0)


async def test_every_admitted_request_completes() -> None:
    gate = admission(max_in_flight=3, queue_size=100)
    done = 0

    async def request() -> None:
        nonlocal done
        await gate.acquire()
        try:
            await asyncio.sleep(0.001)
            done += 1
        finally:
            gate.release()

    await asyncio.gather(*(request() for _ in range(60)))
    assert done == 60
    assert gate.in_flight == 0


async def test_the_limit_follows_measured_latency() -> None:
    gate = admission(target_rps=50, max_in_flight=100)
    gate.update(0.1)
    assert gate.limit == 5
    gate.update(1.0)
    assert gate.limit == 50
    gate.update(10.0)
    assert gate.limit == 100  # capped by max_in_flight
    gate.update(None)
    assert gate.limit == 100


async def test_raising_the_limit_wakes_waiters() -> None:
    gate = admission(target_rps=10, max_in_flight=10)
    gate.update(0.1)  # limit 1
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    assert gate.queued == 1
    gate.update(0.5)  # limit 5
    await asyncio.wait_for(waiter, 1)
    assert gate.in_flight == 2
