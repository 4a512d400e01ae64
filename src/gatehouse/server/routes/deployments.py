"""The admin view of model groups and their deployments' health."""

from __future__ import annotations

import time

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from gatehouse.gateway import Gateway
from gatehouse.gateway.routing.health import GroupHealth, describe
from gatehouse.server.http import JSONResponse
from gatehouse.server.routes.table import RouteSpec


class DeploymentsView(BaseModel):
    groups: list[GroupHealth]


async def list_deployments(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    view = DeploymentsView(groups=describe(gateway.registry.groups(), time.monotonic()))
    return JSONResponse(view)


ROUTES = [
    RouteSpec(
        "GET",
        "/admin/deployments",
        list_deployments,
        summary="Model groups and the health of their deployments",
        response_model=DeploymentsView,
        tag="admin",
        scope="admin",
    ),
]
