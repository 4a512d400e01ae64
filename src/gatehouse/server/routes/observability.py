"""Prometheus metrics of this process."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.observability import CONTENT_TYPE, Metrics
from gatehouse.server.authz import PUBLIC
from gatehouse.server.routes.table import RouteSpec


async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE)


ROUTES = [
    RouteSpec(
        "GET",
        "/metrics",
        metrics,
        summary="Prometheus metrics of this process",
        tag="ops",
        scope=PUBLIC,  # scraped by Prometheus; labels carry no secrets or prompts
    ),
]
