"""Readiness checks: run probes side by side, each bounded by a timeout and timed.

A probe is an async callable that returns a short detail when its dependency
is fine and raises (:class:`NotReady` or whatever the client raised) when it
is not. The probes themselves live beside what they check (the SQL store,
Redis, the Chroma server, the router); this module only runs them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Probe = Callable[[], Awaitable[str]]
CheckStatus = Literal["ok", "failed", "timeout"]
DETAIL_CHARS = 200


class NotReady(Exception):
    """A probe's dependency answered, and the answer is no; the message says why."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: CheckStatus
    latency_ms: float
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


async def run_checks(probes: Sequence[tuple[str, Probe]], *, within: float) -> list[CheckResult]:
    """Run every probe at once; each gets ``within`` seconds, so the whole about as long."""
    return list(await asyncio.gather(*(_run(name, probe, within) for name, probe in probes)))


async def _run(name: str, probe: Probe, within: float) -> CheckResult:
    started = time.perf_counter()
    status: CheckStatus
    try:
        detail = await asyncio.wait_for(probe(), within)
        status = "ok"
    except TimeoutError:
        status, detail = "timeout", f"no answer within {within:g} s"
    except NotReady as exc:
        status, detail = "failed", str(exc)
    except Exception as exc:
        # The client's own words (connection refused, ...), without a traceback;
        # shortened, since the route is public.
        status, detail = "failed", f"{type(exc).__name__}: {exc}"
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return CheckResult(name, status, latency_ms, detail[:DETAIL_CHARS])
