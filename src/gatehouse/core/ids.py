"""Identifiers and time, injectable so tests can fix them."""

from __future__ import annotations

import itertools
import os
import secrets
import time
import weakref
from collections.abc import Callable

Clock = Callable[[], float]
"""Returns the current time in seconds since the epoch."""


def system_clock() -> float:
    return time.time()


def new_id(prefix: str) -> str:
    """A random, URL-safe identifier such as ``chatcmpl-3f9a...``."""
    return f"{prefix}-{secrets.token_hex(12)}"


_SEQUENCES: weakref.WeakSet[IdSequence] = weakref.WeakSet()


def request_id() -> str:
    """A request's id: unique, not secret (clients and logs see it), so a
    counter behind a per-process random prefix rather than a system call."""
    return _REQUEST_IDS.next()


class IdSequence:
    """Unique ids without a system call each: a random per-instance prefix and a
    counter. Unique across processes and restarts because the prefix is (a
    forked child draws a new one)."""

    def __init__(self, prefix: str) -> None:
        self._name = prefix
        self._reseed()
        _SEQUENCES.add(self)

    def _reseed(self) -> None:
        self._prefix = f"{self._name}-{secrets.token_hex(8)}-"
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


def _reseed_after_fork() -> None:
    for sequence in list(_SEQUENCES):
        sequence._reseed()


os.register_at_fork(after_in_child=_reseed_after_fork)
_REQUEST_IDS = IdSequence("req")
