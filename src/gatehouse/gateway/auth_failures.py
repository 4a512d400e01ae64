"""Failed authentications, counted and limited: 429 with ``Retry-After`` past the limit.

Two callers, two rules (``auth.failed_attempts``, docs/security.md):

- **The API** counts credentials that were presented and refused, per client
  address. Past the limit the address is refused (429) before any credential
  it sends is checked, valid ones included, until ``Retry-After``: a flood of
  made-up keys then costs a dictionary look-up, not a database query per key
  id. A valid credential costs nothing here: no counter call on the hot path.
- **The dashboard's login** counts failed logins per client address and per
  target: the key id of a ``gh-`` key (never its secret), or ``master`` for
  anything else; a single sign-on callback that reaches the provider's token
  endpoint counts per address. Past the address's limit that address is refused. Past the
  target's limit, only addresses that have themselves failed on that target
  are refused: whoever holds the key logs in from elsewhere, and a guesser
  spread over many addresses gets one try per address.

Counts live in the shared counter store (:mod:`gatehouse.store.counters`: in
memory, or Redis across replicas) as GCRA rate claims of ``limit`` failures per
``window``: capacity comes back continuously, one failure's worth every
``window / limit`` seconds. An attempt is charged before its credential is
checked (so concurrent attempts cannot overshoot) and given back when it
succeeds. The client address is the connection's peer, or what
``X-Forwarded-For`` says when the peer is in ``server.forwarded_allow_ips``;
an IPv6 client is its /64 network, since it picks any address in that at will.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gatehouse.core.config import FailedAttemptsConfig
from gatehouse.core.errors import RateLimitError, ServiceUnavailableError
from gatehouse.core.ids import Clock
from gatehouse.gateway.keys import parse_key
from gatehouse.store.counters import UNLIMITED, Claim, Counters, CounterUnavailableError

log = logging.getLogger("gatehouse.auth")

MASTER_TARGET: Final = "master"
_MAX_BLOCKED = 10_000  # addresses this replica remembers as refused; expired ones go first


def client_address(scope: Mapping[str, Any]) -> str:
    """The client's address of an ASGI request (after uvicorn applied the
    trusted proxies' ``X-Forwarded-For``); of an IPv6 client, its /64 network."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host = str(client[0])
    return _ipv6_client(host) if ":" in host else host


@functools.lru_cache(maxsize=4096)
def _ipv6_client(host: str) -> str:
    """An IPv6 address's /64 network: one subscriber's (2^64 addresses, any of
    them theirs to use), so a limit per address would be none; an IPv4 address
    seen on a dual-stack socket is itself."""
    try:
        address = ipaddress.IPv6Address(host.partition("%")[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


def login_target(token: str) -> str:
    """What a login attempt is aimed at, without its secret: a key's id, else the master key."""
    parsed = parse_key(token)
    return f"key:{parsed[0]}" if parsed is not None else MASTER_TARGET


def _wait(seconds: float) -> str:
    if seconds >= 120:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{max(1, math.ceil(seconds))} seconds"


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A login attempt let through: what it was charged, given back if it succeeds."""

    claims: tuple[Claim, ...]


class FailedAuthLimiter:
    """Counts failed authentications in ``counters`` and refuses past the limits."""

    def __init__(
        self,
        counters: Counters,
        config: FailedAttemptsConfig,
        *,
        clock: Clock,
        fail_open: bool,
    ) -> None:
        self._counters = counters
        self._config = config
        self._clock = clock
        self._fail_open = fail_open
        # address -> until when this replica refuses it (API), learnt from its failures.
        self._blocked: dict[str, float] = {}

    # -- the API --

    def refusal(self, scope: Mapping[str, Any]) -> RateLimitError | None:
        """The 429 for a request whose address this replica knows to be over the
        API limit; no I/O, and nothing but one truth test while none is."""
        if not self._blocked:
            return None
        address = client_address(scope)
        until = self._blocked.get(address)
        if until is None:
            return None
        left = until - self._clock()
        if left <= 0:
            del self._blocked[address]
            return None
        return _too_many("refused credentials from your address", left)

    async def api_failed(self, address: str) -> RateLimitError | None:
        """Count a refused credential from ``address``; the 429 to answer instead
        of the 401 when that address is now over its limit."""
        limit = self._config.api_per_address
        if limit == 0:
            return None
        claim = Claim(
            "rate", f"authfail:api:{address}", limit, 1.0, self._config.api_window_seconds
        )
        now = self._clock()
        try:
            decision = await self._counters.admit([claim], now)
        except CounterUnavailableError as exc:
            # The 401 stands; what is lost is only the count of this failure.
            log.warning("cannot count a failed authentication: %s", exc)
            return None
        if decision.allowed:
            return None
        wait = decision.outcomes[0].retry_after
        self._block(address, now + wait)
        log.warning("refusing %s for %.0f s: too many failed authentications", address, wait)
        return _too_many("refused credentials from your address", wait)

    def _block(self, address: str, until: float) -> None:
        if len(self._blocked) >= _MAX_BLOCKED:
            now = self._clock()
            for stale in [a for a, t in self._blocked.items() if t <= now]:
                del self._blocked[stale]
            if len(self._blocked) >= _MAX_BLOCKED:
                self._blocked.clear()
        self._blocked[address] = until

    # -- the dashboard's login --

    async def login_attempt(self, address: str, target: str | None) -> LoginAttempt:
        """Charge one login attempt from ``address`` at ``target`` before its
        credential is checked; 429 when either limit refuses it. ``None``: a
        sign-in with no key to aim at (single sign-on), counted per address."""
        config = self._config
        window = config.login_window_seconds
        by_address = (
            Claim("rate", f"authfail:login:addr:{address}", config.login_per_address, 1.0, window)
            if config.login_per_address
            else None
        )
        if target is None or config.login_per_key == 0:
            return await self._charge((by_address,) if by_address else (), by_target=False)
        by_target = Claim(
            "rate", f"authfail:login:target:{target}", config.login_per_key, 1.0, window
        )
        # Whether this address failed on this target within the window: a level, never refused.
        pair = Claim("quota", f"authfail:login:pair:{target}:{address}", UNLIMITED, 1.0, window)
        first = tuple(c for c in (by_address, by_target, pair) if c is not None)
        try:
            return await self._charge(first, by_target=True)
        except _TargetExhausted as exhausted:
            if exhausted.failed_before:
                raise exhausted.error from None
        # The target is over its limit, but not through this address: let it try.
        return await self._charge(tuple(c for c in (by_address, pair) if c is not None), False)

    async def _charge(self, claims: tuple[Claim, ...], by_target: bool) -> LoginAttempt:
        if not claims:
            return LoginAttempt(())
        try:
            decision = await self._counters.admit(claims, self._clock())
        except CounterUnavailableError as exc:
            if self._fail_open:
                log.warning("cannot count login attempts (failing open): %s", exc)
                return LoginAttempt(())
            raise ServiceUnavailableError(
                "Login attempts cannot be counted right now; try again shortly."
            ) from None
        if decision.allowed:
            return LoginAttempt(claims)
        denied = decision.denied()
        assert denied is not None
        outcome = decision.outcomes[denied]
        if claims[denied].key.startswith("authfail:login:addr:"):
            raise _too_many("failed logins from your address", outcome.retry_after)
        assert by_target
        pair_level = decision.outcomes[-1].level  # after this attempt: 1 means none before
        raise _TargetExhausted(
            _too_many("failed logins with this key", outcome.retry_after), pair_level > 1
        )

    async def login_succeeded(self, attempt: LoginAttempt) -> None:
        """Give back what a successful login was charged: it was no failure."""
        if not attempt.claims:
            return
        try:
            await self._counters.settle(attempt.claims, [-1.0] * len(attempt.claims), self._clock())
        except CounterUnavailableError as exc:
            log.warning("cannot give back a successful login's charge: %s", exc)


class _TargetExhausted(Exception):
    def __init__(self, error: RateLimitError, failed_before: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.failed_before = failed_before


def _too_many(what: str, retry_after: float) -> RateLimitError:
    return RateLimitError(
        f"Too many {what}; try again in {_wait(retry_after)}.",
        code="too_many_failed_attempts",
        retry_after=max(1.0, retry_after),
    )
