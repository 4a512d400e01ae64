"""Per-user export and erasure: ``/admin/privacy/users/{user}`` (scope ``admin``).

The work is :class:`gatehouse.privacy.Privacy`'s; this only translates HTTP.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.errors import NotFoundError, ValidationFailedError
from gatehouse.core.principal import Principal
from gatehouse.gateway.governance import Governance
from gatehouse.gateway.service import Gateway
from gatehouse.privacy import Privacy, collections_for, server_privacy
from gatehouse.server.http import JSONResponse
from gatehouse.server.routes.table import RouteSpec


def _privacy(request: Request) -> tuple[Privacy, str, str]:
    """The app's privacy service, the user named in the path, and the caller's id."""
    gateway: Gateway = request.app.state.gateway
    governance: Governance | None = gateway.governance
    if governance is None:
        raise NotFoundError("Administration is not enabled on this server.")
    user = request.path_params["user"]
    if not user or len(user) > 200:
        raise ValidationFailedError("user must be 1 to 200 characters.", param="user")
    state = request.app.state
    privacy: Privacy | None = getattr(state, "privacy", None)
    if privacy is None:
        settings = state.settings
        privacy = state.privacy = server_privacy(
            settings, governance, gateway.stages, collections_for(settings), clock=time.time
        )
    principal: Principal = request.state.principal
    return privacy, user, principal.id


async def export_user(request: Request) -> Response:
    privacy, user, actor = _privacy(request)
    data: dict[str, Any] = await privacy.export(user, actor=actor)
    return JSONResponse(data)


async def delete_user(request: Request) -> Response:
    privacy, user, actor = _privacy(request)
    report = await privacy.delete(user, actor=actor)
    return JSONResponse(report.public())


ROUTES = [
    RouteSpec(
        "GET",
        "/admin/privacy/users/{user}",
        export_user,
        summary="Export everything kept about a user (audited)",
        tag="admin",
        scope="admin",
    ),
    RouteSpec(
        "DELETE",
        "/admin/privacy/users/{user}",
        delete_user,
        summary="Erase a user's data from every store this server reaches (audited)",
        tag="admin",
        scope="admin",
    ),
]
