"""``POST /admin/config/reload``: take on the configuration as it is now, without a restart."""

from __future__ import annotations

import os
import signal

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.config import Settings
from gatehouse.server.http import JSONResponse
from gatehouse.server.reload import Reloader, ReloadResult
from gatehouse.server.routes.table import RouteSpec


async def reload_config(request: Request) -> Response:
    """Read the config file, environment and flags again and apply routing, prices,
    limits and guard policies; a configuration that does not validate is a 422
    and changes nothing. With several workers, the others are told to reload too
    (SIGHUP to the parent process, which passes it on to each)."""
    reloader: Reloader = request.app.state.reloader
    result = await reloader.reload()
    settings: Settings = request.app.state.settings
    if settings.server.workers > 1 and result.status == "applied":
        os.kill(os.getppid(), signal.SIGHUP)
    return JSONResponse(result)


ROUTES = [
    RouteSpec(
        "POST",
        "/admin/config/reload",
        reload_config,
        summary="Reload routing, prices, limits and guard policies from the configuration",
        response_model=ReloadResult,
        tag="admin",
        scope="admin",
    ),
]
