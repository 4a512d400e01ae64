"""Every route of the dashboard, for the app's route table."""

from __future__ import annotations

from gatehouse.server.routes.table import RouteSpec
from gatehouse.ui import login, oidc_login, playground
from gatehouse.ui.login import LOGIN_PROVIDERS

LOGIN_PROVIDERS.append(oidc_login.PROVIDER)

ROUTES: list[RouteSpec] = [
    *login.ROUTES,
    *oidc_login.ROUTES,
    *playground.ROUTES,
]
