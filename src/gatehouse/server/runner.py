"""Serve the app with uvicorn on uvloop + httptools."""

from __future__ import annotations

import logging
import os

import uvicorn

from gatehouse.core.config import Settings, settings_to_json
from gatehouse.observability import multiprocess
from gatehouse.server.app import SETTINGS_ENV, create_app

log = logging.getLogger("gatehouse")

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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
        "http": "httptools",
        "log_level": server.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        # gatehouse reads neither the client's address nor the scheme, so
        # uvicorn's X-Forwarded-* rewriting would be work for nothing on
        # every request.
        "proxy_headers": False,
    }
    if server.workers == 1:
        if multiprocess.ENV in os.environ:
            # Set by the operator: this process counts into files there, so
            # files of an earlier run must go first.
            multiprocess.prepare(settings.data_dir / "prometheus")
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
        return
    # Workers are separate processes: each rebuilds the app from the settings
    # validated here, so every worker runs exactly the same configuration.
    os.environ[SETTINGS_ENV] = settings_to_json(settings)
    # Their counters go to shared files, so that whichever worker answers a
    # scrape reports the whole server's (gatehouse.observability.multiprocess).
    directory = multiprocess.prepare(settings.data_dir / "prometheus")
    log.info("metrics of the %d workers are added up in %s", server.workers, directory)
    uvicorn.run(
        "gatehouse.server.app:create_app_from_environment",
        factory=True,
        workers=server.workers,
        **common,  # type: ignore[arg-type]
    )
