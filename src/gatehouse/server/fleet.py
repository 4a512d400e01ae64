"""A configuration reload that reaches every replica sharing Redis.

``POST /admin/config/reload`` reloads the replica that answers it, then asks
the others through the shared store (:mod:`gatehouse.store.fleet`): it bumps a
generation counter that every replica polls every :data:`POLL_SECONDS`, as
key revocations are polled. A replica that sees the counter move reads its
*own* configuration source again (the same reload as SIGHUP's) and reports
its outcome under that generation. The asker waits up to
:data:`REPORT_WAIT_SECONDS` for the replicas whose heartbeat it saw within
:data:`ALIVE_SECONDS`, and answers with who reported and who did not yet:
a replica still pending has been asked, and reloads when it next polls.

A replica whose new configuration is refused keeps serving its old one, logs
one line and reports ``refused`` (not why: the message may quote the file's
values, and stays in that replica's log). With several workers, each worker
is a replica of its own here. SIGHUP stays local: it reloads this process
(with workers, each of its workers), never the fleet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, ValidationError

from gatehouse.core.config import ConfigSource, Settings
from gatehouse.core.errors import ConflictError, InvalidRequestError
from gatehouse.core.tasks import cancel_and_wait
from gatehouse.server.reload import ReloadResult
from gatehouse.store.fleet import FleetChannel, FleetUnavailableError

log = logging.getLogger("gatehouse.server")

POLL_SECONDS = 0.5  # as auth.revocation_poll_seconds' default: a reload lands as fast
ALIVE_SECONDS = 5.0  # a replica not heard of for this long is not waited for
REPORT_WAIT_SECONDS = 2.0  # how long the asker waits for the others' reports
_REPORT_POLL_SECONDS = 0.05


class ReplicaReload(BaseModel):
    """What another replica did when asked to reload."""

    replica: str  # host name and process id
    status: Literal["applied", "unchanged", "refused"]
    applied: list[str] = []
    restart_required: list[str] = []
    models: list[str] = []


class FleetReport(BaseModel):
    """Whether the other replicas were asked to reload, and what those that answered
    within the wait did."""

    asked: bool
    generation: int | None = None  # the reload's number in the shared store
    reported: list[ReplicaReload] = []
    pending: list[str] = []  # alive, asked, not reported within the wait
    error: str | None = None  # why they could not be asked


class FleetReloadResult(ReloadResult):
    """The answer of ``POST /admin/config/reload``: this replica's reload and, with
    Redis, the others'."""

    fleet: FleetReport | None = None


Reload = Callable[[], Awaitable[ReloadResult]]


class Fleet:
    """This replica's part in fleet reloads: it polls the generation, follows it, and
    asks the others."""

    def __init__(
        self,
        channel: FleetChannel,
        reload: Reload,
        *,
        replica: str | None = None,
        clock: Callable[[], float] = time.time,
        inherited: bool = False,
    ) -> None:
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}"
        # Settings handed down at start (a worker's, from the parent) rather than
        # read here: they may predate a reload asked since.
        self._inherited = inherited
        self._channel = channel
        self._reload = reload
        self._clock = clock
        self._seen: int | None = None  # the generation this replica has followed
        self._lock = asyncio.Lock()  # a generation is either asked here or followed
        self._task: asyncio.Task[None] | None = None
        self.poll_failures = 0

    async def start(self) -> None:
        """Take the current generation as followed (this replica just read its
        configuration) and start polling. With inherited settings, a reload asked
        before is followed at the first poll."""
        try:
            generation = await self._channel.beat(self.replica, self._clock())
            self._seen = None if self._inherited and generation != 0 else generation
        except FleetUnavailableError as exc:
            # Unknown: the first generation read, once Redis answers, is followed.
            log.warning("configuration reloads of other replicas not followed yet: %s", exc)
        self._task = asyncio.create_task(self._poll(), name="gatehouse-fleet-reload-poll")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._channel.close()

    async def check(self) -> None:
        """Beat once; reload if another replica asked since the last check. Any
        change of the generation counts (Redis restarted empty goes back to 0)."""
        async with self._lock:
            generation = await self._channel.beat(self.replica, self._clock())
            if generation == self._seen:
                return
            self._seen = generation
        await self._follow(generation)

    async def ask(self) -> FleetReport:
        """Ask the other replicas to reload, and wait a little for their reports."""
        try:
            async with self._lock:
                generation = await self._channel.ask()
                self._seen = generation  # done already, by the caller
        except FleetUnavailableError as exc:
            log.error("configuration reload: the other replicas could not be asked: %s", exc)
            return FleetReport(asked=False, error=f"Redis did not answer: {exc}")
        deadline = time.monotonic() + REPORT_WAIT_SECONDS
        others: list[str] = []
        reports: dict[str, str] = {}
        while True:
            try:
                alive = await self._channel.alive(self._clock(), ALIVE_SECONDS)
                reports = await self._channel.reports(generation)
            except FleetUnavailableError:
                break  # asked; who reported is unknown
            others = [r for r in alive if r != self.replica]
            if all(r in reports for r in others) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(_REPORT_POLL_SECONDS)
        reported = [_parsed(r, reports[r]) for r in sorted(reports) if r != self.replica]
        return FleetReport(
            asked=True,
            generation=generation,
            reported=[r for r in reported if r is not None],
            pending=[r for r in others if r not in reports],
        )

    async def _follow(self, generation: int) -> None:
        try:
            result = await self._reload()
            report = ReplicaReload(
                replica=self.replica,
                status=result.status,
                applied=result.applied,
                restart_required=result.restart_required,
                models=result.models,
            )
        except (InvalidRequestError, ConflictError) as exc:
            log.error(
                "configuration reload %d asked by another replica: not reloaded, "
                "the old configuration stays: %s",
                generation,
                exc.message,
            )
            report = ReplicaReload(replica=self.replica, status="refused")
        try:
            await self._channel.report(generation, self.replica, report.model_dump_json())
        except FleetUnavailableError as exc:
            log.warning("configuration reload %d: outcome not reported: %s", generation, exc)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.check()
            except FleetUnavailableError as exc:
                self.poll_failures += 1
                if self.poll_failures % 20 == 1:
                    log.warning("cannot poll configuration reloads of other replicas: %s", exc)
            except Exception:
                # A bug must not end the polling: the next reload would be missed.
                log.exception("following a configuration reload of another replica failed")


def _parsed(replica: str, report: str) -> ReplicaReload | None:
    try:
        return ReplicaReload.model_validate_json(report)
    except ValidationError:
        # Another version's report (a rolling upgrade): it reloaded all the same.
        log.warning("configuration reload: unreadable report of %s: %s", replica, report[:200])
        return None


def fleet_for(settings: Settings, source: ConfigSource | None, reload: Reload) -> Fleet | None:
    """The fleet of a server that has a configuration to read again and shares Redis;
    ``None`` otherwise (a reload is this process's alone, as before)."""
    if source is None or settings.store.redis_url is None:
        return None
    from gatehouse.store.redis_fleet import RedisFleetChannel  # imports OpenTelemetry

    return Fleet(
        RedisFleetChannel(settings.store.redis_url.get_secret_value()),
        reload,
        # A worker serves the settings its parent read at start, not its own reading.
        inherited=settings.server.workers > 1,
    )
