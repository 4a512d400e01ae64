"""Liveness and readiness probes."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.gateway import Check, Gateway
from gatehouse.server.authz import PUBLIC
from gatehouse.server.http import JSONResponse
from gatehouse.server.routes.table import RouteSpec


async def healthz(request: Request) -> Response:
    """The process is alive and serving HTTP; says nothing about dependencies."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Models loadable and storage writable: ready to take traffic."""
    gateway: Gateway = request.app.state.gateway
    checks = [*gateway.model_checks(), _storage_check(request.app.state.data_dir)]
    ready = all(check.ok for check in checks)
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        },
        status_code=200 if ready else 503,
    )


def _storage_check(data_dir: Path) -> Check:
    if not data_dir.is_dir():
        return Check("storage:data_dir", False, f"{data_dir} does not exist")
    if not os.access(data_dir, os.W_OK):
        return Check("storage:data_dir", False, f"{data_dir} is not writable")
    return Check("storage:data_dir", True, str(data_dir))


ROUTES = [
    RouteSpec("GET", "/healthz", healthz, summary="Liveness probe", tag="health", scope=PUBLIC),
    RouteSpec("GET", "/readyz", readyz, summary="Readiness probe", tag="health", scope=PUBLIC),
]
