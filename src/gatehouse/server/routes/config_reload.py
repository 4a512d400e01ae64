"""``POST /admin/config/reload``: take on the configuration as it is now, without a restart."""

from __future__ import annotations

import os
import signal

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.config import Settings
from gatehouse.server.fleet import Fleet, FleetReloadResult
from gatehouse.server.reload import Reloader
from gatehouse.server.routes.table import RouteSpec


async def reload_config(request: Request) -> Response:
    """Read the config file, environment and flags again and apply routing, prices,
    limits and guard policies; a configuration that does not validate is a 422,
    changes nothing and asks no other replica. With Redis, every replica sharing it
    is then asked to read its own configuration again (``fleet``: who reported
    back within 2 s, who is still pending). Without it, with several workers, the
    others are told to reload too (SIGHUP to the parent process, which passes it
    on to each)."""
    reloader: Reloader = request.app.state.reloader
    result = FleetReloadResult(**(await reloader.reload()).model_dump())
    fleet: Fleet | None = request.app.state.fleet
    if fleet is not None:
        result.fleet = await fleet.ask()
    settings: Settings = request.app.state.settings
    asked = result.fleet is not None and result.fleet.asked
    if settings.server.workers > 1 and result.status == "applied" and not asked:
        os.kill(os.getppid(), signal.SIGHUP)
    return Response(
        result.model_dump_json(exclude_none=True),
        media_type="application/json",
    )


ROUTES = [
    RouteSpec(
        "POST",
        "/admin/config/reload",
        reload_config,
        summary="Reload routing, prices, limits and guard policies from the configuration, "
        "on every replica sharing Redis",
        response_model=FleetReloadResult,
        tag="admin",
        scope="admin",
    ),
]
