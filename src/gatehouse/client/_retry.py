"""When to try a call again, and how long to wait first: decisions without I/O.

:func:`attempts` is the whole retry loop as a generator, in the manner of
httpx's ``auth_flow``: it yields :class:`Send` (make this HTTP request) and
:class:`Wait` (sleep this long) and is sent back what sending gave, an
``httpx.Response`` or the ``httpx.TransportError`` it raised. The sync and the
async client each drive it with their own I/O, so the two cannot disagree on
what is retried.

Retried: connection failures (refused, reset before an answer, a pool or
connect timeout), 429 (except an exhausted budget) and 5xx. Never retried: a
read timeout (the server may have run the call), other 4xx. The wait is
exponential backoff with full jitter (a uniform draw in ``[0, min(cap,
base * 2**n))``), unless the answer said ``Retry-After`` (seconds or an HTTP
date) or ``retry-after-ms``: then exactly that, up to ``max_retry_after``;
a longer rest is not waited out but raised.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from gatehouse.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    status_error_class,
)

# Failures that happened before the server could have acted on the request
# (RemoteProtocolError: a pooled keep-alive connection closed under us).
_RETRYABLE_TRANSPORT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a call gets and how long to wait between them.

    ``max_attempts`` counts the first try (1 means no retries). ``rand`` and
    ``clock`` are injectable so tests decide the jitter and the time an HTTP
    date is measured from.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    rand: Callable[[], float] = field(default=random.random, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, attempt: int) -> float:
        """Full jitter after the ``attempt``-th failure (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return self.rand() * ceiling

    def delay(self, attempt: int, outcome: httpx.Response | httpx.TransportError) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` for "do not retry"."""
        if attempt >= self.max_attempts:
            return None
        if isinstance(outcome, httpx.TransportError):
            return self.backoff(attempt) if isinstance(outcome, _RETRYABLE_TRANSPORT) else None
        if not is_retryable_status(outcome):
            return None
        asked = retry_after(outcome.headers, now=self.clock())
        if asked is None:
            return self.backoff(attempt)
        return asked if asked <= self.max_retry_after else None


def is_retryable_status(response: httpx.Response) -> bool:
    if response.status_code >= 500:
        return True
    if response.status_code != 429:
        return False
    # An exhausted budget stays exhausted until its period turns.
    error = error_fields(response)
    return not (error.get("type") == "insufficient_quota" or error.get("code") == "budget_exceeded")


def retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """The rest an answer asks for, in seconds: ``retry-after-ms``, else ``Retry-After``
    as seconds or an HTTP date (measured from ``now``); ``None`` if absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1
        if value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT by definition
            return None
        return max(0.0, when.timestamp() - now)
    return seconds if seconds >= 0 else None


def error_fields(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-shaped error body (empty if there is none)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def status_error(response: httpx.Response, *, now: float | None = None) -> APIStatusError:
    """The typed error for an error answer (its body must have been read)."""
    error = error_fields(response)
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    code = error.get("code") if isinstance(error.get("code"), str) else None
    param = error.get("param") if isinstance(error.get("param"), str) else None
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = response.text[:500] or response.reason_phrase
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    cls = status_error_class(response.status_code, kind, code)
    return cls(
        message,
        status=response.status_code,
        type=kind,
        code=code,
        param=param,
        request_id=response.headers.get("x-request-id"),
        retry_after=retry_after(response.headers, now=time.time() if now is None else now),
        body=body,
    )


def connection_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"The request timed out: {exc!r}")
    return APIConnectionError(f"Could not reach the gatehouse server: {exc!r}")


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``request``; with ``stream`` leave the body unread (an error body must be read)."""

    request: httpx.Request
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


Outcome = httpx.Response | httpx.TransportError | None
Attempts = Generator[Send | Wait, Outcome, httpx.Response]


def attempts(request: httpx.Request, policy: RetryPolicy, *, stream: bool = False) -> Attempts:
    """The retry loop of one call; returns the successful response or raises a typed error."""
    attempt = 0
    while True:
        attempt += 1
        outcome = yield Send(request, stream)
        if outcome is None:
            raise RuntimeError("the driver sent no outcome for a Send")
        wait = policy.delay(attempt, outcome)
        if wait is None:
            if isinstance(outcome, httpx.TransportError):
                raise connection_error(outcome) from outcome
            if outcome.status_code >= 400:
                raise status_error(outcome, now=policy.clock())
            return outcome
        yield Wait(wait)
