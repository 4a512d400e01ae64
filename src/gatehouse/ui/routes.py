"""Every route of the dashboard, for the app's route table."""

from __future__ import annotations

from gatehouse.server.routes.table import RouteSpec
from gatehouse.ui import login

ROUTES: list[RouteSpec] = [
    *login.ROUTES,
]
