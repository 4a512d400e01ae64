"""The failed-authentication limiter's arithmetic, on in-memory counters and a
fake clock: when it refuses, for how long, what it gives back, and what it does
when the counter store is down. The same rules against real servers and Redis:
tests/integration/test_ui_hardening.py."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gatehouse.core.config import FailedAttemptsConfig
from gatehouse.core.errors import RateLimitError, ServiceUnavailableError
from gatehouse.gateway.auth_failures import (
    MASTER_TARGET,
    FailedAuthLimiter,
    client_address,
    login_target,
)
from gatehouse.store.counters import Claim, CounterUnavailableError, Decision, MemoryCounters

from .governed import FakeClock


def _limiter(clock: FakeClock, *, fail_open: bool = False, **limits: float) -> FailedAuthLimiter:
    return FailedAuthLimiter(
        MemoryCounters(), FailedAttemptsConfig(**limits), clock=clock, fail_open=fail_open
    )


def _scope(address: str) -> dict[str, object]:
    return {"type": "http", "client": (address, 5000)}


async def test_the_api_refuses_an_address_past_its_limit_until_capacity_returns() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, api_per_address=3, api_window_seconds=60)
    for _ in range(3):
        assert await limiter.api_failed("10.0.0.1") is None
    assert limiter.refusal(_scope("10.0.0.1")) is None
    over = await limiter.api_failed("10.0.0.1")
    assert over is not None
    assert over.http_status == 429
    assert over.retry_after == pytest.approx(20.0)  # one failure's worth: 60 s / 3
    # From now on the address is refused before anything is checked; others are not.
    refused = limiter.refusal(_scope("10.0.0.1"))
    assert refused is not None
    assert refused.retry_after == pytest.approx(20.0)
    assert limiter.refusal(_scope("10.0.0.2")) is None
    clock.advance(19.5)
    assert limiter.refusal(_scope("10.0.0.1")) is not None
    clock.advance(0.5)
    assert limiter.refusal(_scope("10.0.0.1")) is None
    assert await limiter.api_failed("10.0.0.1") is None  # one came back
    assert await limiter.api_failed("10.0.0.1") is not None


async def test_a_zero_limit_is_off() -> None:
    limiter = _limiter(FakeClock(), api_per_address=0, login_per_address=0, login_per_key=0)
    for _ in range(100):
        assert await limiter.api_failed("10.0.0.1") is None
        attempt = await limiter.login_attempt("10.0.0.1", MASTER_TARGET)
        assert attempt.claims == ()


async def test_a_successful_login_is_given_back() -> None:
    limiter = _limiter(FakeClock(), login_per_address=2, login_per_key=5)
    for _ in range(10):
        attempt = await limiter.login_attempt("10.0.0.1", "key:a")
        await limiter.login_succeeded(attempt)
    await limiter.login_attempt("10.0.0.1", "key:a")
    await limiter.login_attempt("10.0.0.1", "key:a")
    with pytest.raises(RateLimitError, match="from your address") as refused:
        await limiter.login_attempt("10.0.0.1", "key:b")
    assert refused.value.retry_after == pytest.approx(450.0)  # 900 s / 2


async def test_a_guessed_key_refuses_only_addresses_that_failed_on_it() -> None:
    limiter = _limiter(FakeClock(), login_per_address=10, login_per_key=2)
    await limiter.login_attempt("10.0.0.1", "key:a")
    await limiter.login_attempt("10.0.0.2", "key:a")
    for address in ("10.0.0.1", "10.0.0.2"):
        with pytest.raises(RateLimitError, match="with this key"):
            await limiter.login_attempt(address, "key:a")
    # A fresh address is let through once, charged to itself only.
    fresh = await limiter.login_attempt("10.0.0.3", "key:a")
    assert [c.key for c in fresh.claims] == [
        "authfail:login:addr:10.0.0.3",
        "authfail:login:pair:key:a:10.0.0.3",
    ]
    with pytest.raises(RateLimitError, match="with this key"):
        await limiter.login_attempt("10.0.0.3", "key:a")
    # Had it succeeded, it would not have counted as a failure there.
    holder = await limiter.login_attempt("10.0.0.4", "key:a")
    await limiter.login_succeeded(holder)
    await limiter.login_succeeded(await limiter.login_attempt("10.0.0.4", "key:a"))
    # Another key is untouched.
    await limiter.login_attempt("10.0.0.1", "key:b")


class _Down:
    """A counter store that cannot be reached."""

    async def admit(self, claims: Sequence[Claim], now: float) -> Decision:
        raise CounterUnavailableError("connection refused")

    async def settle(self, claims: Sequence[Claim], deltas: Sequence[float], now: float) -> None:
        raise CounterUnavailableError("connection refused")

    async def seed(self, key: str, value: float, ttl: float) -> None:
        raise CounterUnavailableError("connection refused")

    async def close(self) -> None:
        return None


async def test_an_unreachable_store_fails_logins_closed_or_open_and_keeps_the_401() -> None:
    config = FailedAttemptsConfig()
    closed = FailedAuthLimiter(_Down(), config, clock=FakeClock(), fail_open=False)
    with pytest.raises(ServiceUnavailableError):
        await closed.login_attempt("10.0.0.1", MASTER_TARGET)
    assert await closed.api_failed("10.0.0.1") is None  # the 401 stands
    opened = FailedAuthLimiter(_Down(), config, clock=FakeClock(), fail_open=True)
    attempt = await opened.login_attempt("10.0.0.1", MASTER_TARGET)
    assert attempt.claims == ()
    await opened.login_succeeded(attempt)


def test_targets_and_addresses_hold_no_secret() -> None:
    secret = "s" * 32
    assert login_target(f"gh-{'a' * 16}_{secret}") == f"key:{'a' * 16}"
    assert login_target("sk-anything-else") == MASTER_TARGET
    assert login_target("") == MASTER_TARGET
    assert client_address({"client": ("192.0.2.7", 1234)}) == "192.0.2.7"
    assert client_address({"client": None}) == "unknown"
