"""Every route of the dashboard, for the app's route table."""

from __future__ import annotations

from gatehouse.server.routes.table import RouteSpec
from gatehouse.ui import deployments, keys, login, logs, oidc_login, overview, playground
from gatehouse.ui.login import LOGIN_PROVIDERS

LOGIN_PROVIDERS.append(oidc_login.PROVIDER)

ROUTES: list[RouteSpec] = [
    *login.ROUTES,
    *overview.ROUTES,
    *keys.ROUTES,
    *deployments.ROUTES,
    *logs.ROUTES,
    *oidc_login.ROUTES,
    *playground.ROUTES,
]
