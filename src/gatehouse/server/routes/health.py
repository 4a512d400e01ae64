"""Liveness and readiness probes."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.config import Settings
from gatehouse.core.errors import GatehouseError
from gatehouse.gateway import Check, Gateway
from gatehouse.gateway.auth import bearer
from gatehouse.observability.health import NotReady, Probe, run_checks
from gatehouse.rag.chroma import heartbeat
from gatehouse.server.authz import PUBLIC, authorize
from gatehouse.server.http import JSONResponse
from gatehouse.server.routes.table import RouteSpec


async def healthz(request: Request) -> Response:
    """The process is alive and serving HTTP; says nothing about dependencies."""
    return JSONResponse({"status": "ok"})


# Each check's bound: a dependency slower than this to answer a ping is not ready.
READY_TIMEOUT = 1.0


async def readyz(request: Request) -> Response:
    """Every configured dependency answers: models loadable, storage writable, the
    SQL store, Redis, the Chroma server and (role ``rag``) the gateway reachable, and
    each model group with a deployment whose breaker is not open. Checks run at once, each within
    ``READY_TIMEOUT``; a 503 lists the reasons. From SIGTERM on, always a 503.
    Public, but only an ``admin`` caller is shown the checks: anyone else the status."""
    if request.app.state.lifecycle.draining:
        # SIGTERM: the load balancer should stop sending before the port closes.
        reason = "shutting down: finishing the requests in progress"
        return JSONResponse(
            {"status": "not_ready", "checks": [], "reasons": [reason]}, status_code=503
        )
    gateway: Gateway = request.app.state.gateway
    settings: Settings = request.app.state.settings
    known = [
        *gateway.model_checks(),
        *gateway.routing_checks(),
        _storage_check(request.app.state.data_dir),
    ]
    probes: list[tuple[str, Probe]] = [(check.name, _settled(check)) for check in known]
    if gateway.governance is not None:
        probes.extend(gateway.governance.readiness_probes())
    if settings.rag.vector_backend == "chroma" and settings.rag.chroma_url:
        probes.append(
            (
                "rag:chroma",
                functools.partial(heartbeat, settings.rag.chroma_url, within=READY_TIMEOUT),
            )
        )
    remote = getattr(request.app.state, "remote_gateway", None)
    if remote is not None:  # role rag: the gateway its model calls go to
        probes.append(("rag:gateway", remote.ping))
    checks = await run_checks(probes, within=READY_TIMEOUT)
    request.app.state.metrics.readiness((c.name, c.ok) for c in checks)
    ready = all(check.ok for check in checks)
    status = 200 if ready else 503
    if not await _shows_details(request):
        # Probes call without credentials: the verdict only, not the model
        # groups and upstream deployments a key's /v1/models may not list.
        return JSONResponse({"status": "ready" if ready else "not_ready"}, status_code=status)
    body: dict[str, object] = {
        "status": "ready" if ready else "not_ready",
        "checks": [
            {
                "name": c.name,
                "ok": c.ok,
                "status": c.status,
                "latency_ms": c.latency_ms,
                "detail": c.detail,
            }
            for c in checks
        ],
    }
    if not ready:
        body["reasons"] = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    return JSONResponse(body, status_code=status)


async def _shows_details(request: Request) -> bool:
    """Whether the caller may read each check: with the ``admin`` scope of the
    admin API (the master key, an admin key without a team), or anyone when the
    server checks no credentials. A refused credential counts as a failed one."""
    governance = request.app.state.gateway.governance
    if governance is None or not governance.authenticator.enabled:
        return True
    if bearer(request.headers) is None:
        return False
    try:
        await authorize(request.scope, "admin")
    except GatehouseError:
        return False
    return True


def _settled(check: Check) -> Probe:
    """A check already decided (no I/O), as a probe."""

    async def probe() -> str:
        if not check.ok:
            raise NotReady(check.detail)
        return check.detail

    return probe


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
