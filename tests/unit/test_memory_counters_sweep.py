"""The in-process counters forget expired keys nobody reads again."""

from __future__ import annotations

import asyncio

from gatehouse.store.counters import Claim, MemoryCounters


def test_expired_keys_never_read_again_are_swept() -> None:
    counters = MemoryCounters()

    async def scan(start: float, keys: int) -> None:
        for i in range(keys):  # one failed login from each of many addresses
            claim = Claim("rate", f"address-{start}-{i}", 10, 1, 60.0)
            assert (await counters.admit([claim], start + i * 1e-3)).allowed

    asyncio.run(scan(0.0, 5_000))
    # Hours later, a new wave: the first wave's windows have long expired.
    asyncio.run(scan(10_000.0, 5_000))
    live = len(counters._values)
    assert live <= 2 * 5_000
    assert not any(key.startswith("address-0.0-") for key in counters._values)


def test_live_keys_survive_a_sweep() -> None:
    counters = MemoryCounters()
    kept = Claim("rate", "kept", 100, 1, 3600.0)  # its window lives 37 s after a call

    async def run() -> None:
        assert (await counters.admit([kept], 99.0)).allowed
        for i in range(3 * MemoryCounters.SWEEP_FLOOR):
            await counters.admit([Claim("rate", f"gone-{i}", 10, 1, 1.0)], 100.0 + i * 1e-3)
        assert "kept" in counters._values
        assert counters._values["kept"][0] > 100.0  # its state, not a fresh one

    asyncio.run(run())
