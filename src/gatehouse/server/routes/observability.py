"""Prometheus metrics of this process."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.config import Settings
from gatehouse.observability import CONTENT_TYPE, Metrics
from gatehouse.server.authz import PUBLIC, authorize
from gatehouse.server.routes.table import RouteSpec


async def metrics(request: Request) -> Response:
    """The metrics text; with ``observability.metrics.require_auth``, for ``admin`` only.

    Public by default, as Prometheus scrapes it; the series name teams, model
    groups and deployments and carry each team's tokens and cost, which a
    server reachable by more than its operators may want to keep to them.
    """
    settings: Settings = request.app.state.settings
    if settings.observability.metrics.require_auth:
        await authorize(request.scope, "admin")  # 401 / 403, OpenAI-shaped
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE)


ROUTES = [
    RouteSpec(
        "GET",
        "/metrics",
        metrics,
        summary="Prometheus metrics of this process",
        tag="ops",
        # Scraped by Prometheus; labels carry no secrets or prompts. With
        # metrics.require_auth the handler asks for the admin scope itself.
        scope=PUBLIC,
    ),
]
