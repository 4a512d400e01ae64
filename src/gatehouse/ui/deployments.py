"""Deployments: each model group's deployments with health, circuit state, latency
and recent errors (the same view as ``GET /admin/deployments``, plus the request
log's latest failures of each deployment)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.records import UsageEvent, iso
from gatehouse.gateway import Gateway
from gatehouse.gateway.routing.health import describe
from gatehouse.store.ledger import EventQuery
from gatehouse.ui.nav import NAV, NavItem
from gatehouse.ui.pages import render, ui_route

RECENT_ERRORS = 5


async def deployments(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    groups = describe(gateway.registry.groups(), time.monotonic())
    errors: dict[str, list[UsageEvent]] = {}
    governance = gateway.governance
    if governance is not None:
        for group in groups:
            for deployment in group.deployments:
                page = await governance.admin.requests(
                    EventQuery(deployment=deployment.id, status="error"), limit=RECENT_ERRORS
                )
                errors[deployment.id] = page.events
    return render(request, "deployments.html", {"groups": groups, "errors": errors, "iso": iso})


NAV.append(NavItem("Deployments", "/ui/deployments", "viewer", "Health of each model group", 50))

ROUTES = [
    ui_route(
        "GET", "/ui/deployments", deployments, "Dashboard: deployments' health", role="viewer"
    ),
]
