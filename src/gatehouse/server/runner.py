"""Serve the app with uvicorn on uvloop + httptools.

SIGTERM drains (``/readyz`` turns 503, then the port closes and requests in
progress get ``server.drain_timeout_seconds``: see
:mod:`gatehouse.server.lifecycle`), the outbox is shipped, and the process
exits 0. SIGHUP reloads the configuration; with several workers the parent
passes it on to each.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from gatehouse.core.config import ConfigSource, Settings, settings_to_json
from gatehouse.observability import multiprocess
from gatehouse.server.app import SETTINGS_ENV, create_app
from gatehouse.server.protocol import GuardedHttpToolsProtocol
from gatehouse.server.reload import SOURCE_ENV
from gatehouse.store import sqlite_counters
from gatehouse.store.database import prepare_schema
from gatehouse.ui.session import LOGOUT_PREFIX

log = logging.getLogger("gatehouse")

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def serve(settings: Settings, *, source: ConfigSource | None = None) -> None:
    """Serve until SIGTERM or SIGINT; ``source`` (where ``settings`` came from) is
    read again on SIGHUP or ``POST /admin/config/reload``."""
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Once, before any worker starts: migrate (or, with store.auto_upgrade off,
    # check) the schema, so that a schema this version cannot serve stops
    # here, before it says it listens, with one line instead of in each worker's start-up.
    asyncio.run(prepare_schema(settings, upgrade=settings.store.auto_upgrade))
    if not settings.auth.enabled and settings.server.host not in LOOPBACK:
        # Without credentials anyone who can reach the port could spend the
        # organisation's money: such a server is only for this machine.
        log.warning(
            "no authentication configured (set GATEHOUSE_MASTER_KEY or auth.jwt): "
            "binding to 127.0.0.1 instead of %s",
            settings.server.host,
        )
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"host": "127.0.0.1"})}
        )
    elif not settings.auth.enabled:
        log.warning("no authentication configured: serving localhost only, without auth")
    server = settings.server
    log.info(
        "gatehouse listening on http://%s:%d (data dir %s, %d worker(s))",
        server.host,
        server.port,
        settings.data_dir,
        server.workers,
    )
    if settings.unsupported_keys:
        log.warning(
            "these config keys are not supported by gatehouse and have no effect: %s",
            ", ".join(settings.unsupported_keys),
        )
    common = {
        "host": server.host,
        "port": server.port,
        "loop": "uvloop",
        # httptools, with deadlines on each request's head and body and a size
        # limit on its head (gatehouse.server.protocol): slow clients cannot
        # hold connections.
        "http": functools.partial(
            GuardedHttpToolsProtocol,
            header_timeout=server.header_timeout_seconds,
            body_timeout=server.body_timeout_seconds,
            write_timeout=server.write_timeout_seconds,
        ),
        "log_level": server.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": server.drain_timeout_seconds,
        # Only behind a proxy that says so: otherwise X-Forwarded-* rewriting
        # is work for nothing on every request (docs/operations.md, TLS).
        "proxy_headers": server.forwarded_allow_ips is not None,
        "forwarded_allow_ips": server.forwarded_allow_ips,
    }
    if server.workers == 1:
        if multiprocess.ENV in os.environ:
            # Set by the operator: this process counts into files there, so
            # files of an earlier run must go first.
            multiprocess.prepare(settings.data_dir / "prometheus")
        app = create_app(settings, source=source, signals=True)
        with _exit_0_on_sigterm():
            uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    # Workers are separate processes: each rebuilds the app from the settings
    # validated here, so every worker runs exactly the same configuration.
    os.environ[SETTINGS_ENV] = settings_to_json(settings)
    if source is not None:
        os.environ[SOURCE_ENV] = source.to_json()
    # Their counters go to shared files, so that whichever worker answers a
    # scrape reports the whole server's (gatehouse.observability.multiprocess).
    directory = multiprocess.prepare(settings.data_dir / "prometheus")
    log.info("metrics of the %d workers are added up in %s", server.workers, directory)
    if settings.store.redis_url is None:
        # Their shared counters (gateway.governance) start empty, as one
        # process's do, so budgets are seeded from the ledger again; but a
        # session logged out stays so.
        sqlite_counters.start_afresh(
            settings.data_dir / sqlite_counters.COUNTERS_FILE, keep=[LOGOUT_PREFIX]
        )
    serve_workers(
        "gatehouse.server.app:create_app_from_environment", workers=server.workers, **common
    )


# A worker imports all of gatehouse before it can answer uvicorn's health check:
# about 3 s on a busy 2-core machine, more with several starting at once, and
# uvicorn's default of 5 s had workers killed and replaced while starting.
WORKER_HEALTHCHECK_SECONDS = 30


def serve_workers(app: str, **options: Any) -> None:
    """uvicorn with ``options["workers"]`` processes (``app`` an import string), under
    :class:`_Workers`."""
    options.setdefault("timeout_worker_healthcheck", WORKER_HEALTHCHECK_SECONDS)
    config = _WorkerConfig(app, factory=True, **options)
    _Workers(config, sockets=[config.bind_socket()]).run()


class _WorkerConfig(uvicorn.Config):
    """uvicorn's configuration of the workers, which makes each worker (the first
    ones and any replacement alike) end with status 0 once SIGTERM has drained
    it: uvicorn raises the signal again after a clean shutdown, with the handler
    it found when it started serving, and a worker starts with the default one
    (status -15)."""

    def get_loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        # Called in the worker process, just before uvicorn installs its handlers.
        signal.signal(signal.SIGTERM, _drained)
        return super().get_loop_factory()


@contextlib.contextmanager
def _exit_0_on_sigterm() -> Iterator[None]:
    """uvicorn raises the signal that stopped it again once it has shut down
    cleanly; the default action would end a drained process with status 143."""
    previous = signal.signal(signal.SIGTERM, _drained)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _drained(sig: int, frame: FrameType | None) -> None:
    """SIGTERM once the server has stopped: nothing left to do but return."""


class _Workers(Multiprocess):
    """uvicorn's worker supervisor, but SIGHUP reloads each worker's configuration in
    place (the workers' own handler) instead of replacing the workers, and each
    worker's exit status is logged."""

    def join_all(self) -> None:
        super().join_all()
        for process in self.processes:
            level = logging.INFO if process.exitcode == 0 else logging.ERROR
            log.log(level, "worker %s ended with status %s", process.pid, process.exitcode)

    def handle_term(self) -> None:
        # Each worker drains on its own copy of the listening socket and closes
        # it when it stops accepting; the parent's copy must not keep the port
        # open (new connections queued for no one) until the last worker ends.
        for sock in self.sockets:
            sock.close()
        super().handle_term()

    def handle_hup(self) -> None:
        log.info("SIGHUP: each of the %d workers reloads the configuration", len(self.processes))
        for process in self.processes:
            if process.pid is not None and process.process.is_alive():
                os.kill(process.pid, signal.SIGHUP)
