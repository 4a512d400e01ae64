"""Identifiers and time, injectable so tests can fix them."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Returns the current time in seconds since the epoch."""


def system_clock() -> float:
    return time.time()


def new_id(prefix: str) -> str:
    """A random, URL-safe identifier such as ``chatcmpl-3f9a...``."""
    return f"{prefix}-{secrets.token_hex(12)}"


def request_id() -> str:
    return new_id("req")


class IdSequence:
    """Unique ids without a system call each: a random per-instance prefix and a
    counter. Unique across processes and restarts because the prefix is."""

    def __init__(self, prefix: str) -> None:
        self._prefix = f"{prefix}-{secrets.token_hex(8)}-"
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):x}"
