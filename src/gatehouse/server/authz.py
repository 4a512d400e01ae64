"""Authorization of HTTP routes, in one place.

Each route in the table declares what it needs (:data:`RouteScope`);
:func:`authorize` is the only code that checks it, before the endpoint runs.
A missing or bad credential is 401, a valid one without the scope 403.
Calls that routes make on a caller's behalf (chat, embeddings, RAG's model
calls) are checked again by the pipeline's auth stage against the same
principal, with the same :meth:`Principal.require`. The dashboard's pages
(``ui:<role>``) are checked against the session cookie instead of a bearer
credential, by :func:`gatehouse.ui.session.authorize_ui`. A credential with
the ``admin`` scope that belongs to a team is the dashboard's team admin
(:func:`gatehouse.ui.session.role_for`): the admin API refuses it (403).
Refused credentials are counted per client address
(:mod:`gatehouse.gateway.auth_failures`): past ``auth.failed_attempts`` the
address gets 429 before anything it sends is checked.
"""

from __future__ import annotations

from typing import Final, Literal

from starlette.datastructures import Headers
from starlette.types import Scope

from gatehouse.core.errors import AuthenticationError, PermissionDeniedError
from gatehouse.core.principal import ANONYMOUS, Principal
from gatehouse.gateway.auth import bearer
from gatehouse.gateway.auth_failures import client_address

RouteScope = Literal[
    "public",
    "authenticated",
    "chat",
    "embeddings",
    "rag:read",
    "rag:write",
    "prompts:read",
    "prompts:write",
    "admin",
    # Web dashboard pages: a session cookie of at least this role (gatehouse.ui.session).
    "ui:viewer",
    "ui:team_admin",
    "ui:admin",
]
PUBLIC: Final = "public"
AUTHENTICATED: Final = "authenticated"


async def authorize(scope: Scope, needs: RouteScope) -> Principal:
    """The caller of this request if it may use a route that ``needs`` this; else 401/403."""
    if needs == PUBLIC:
        return ANONYMOUS
    if needs.startswith("ui:"):
        from gatehouse.ui.session import authorize_ui  # the dashboard imports the server

        return await authorize_ui(scope, needs)
    governance = scope["app"].state.gateway.governance
    if governance is None or not governance.authenticator.enabled:
        return ANONYMOUS  # nobody to check against: the server listens on localhost only
    headers = Headers(scope=scope)
    limiter = governance.failed_auth
    refusal = limiter.refusal(scope)
    if refusal is not None:
        raise refusal  # too many refused credentials from this address: none is checked
    try:
        principal: Principal = await governance.authenticator.authenticate(headers)
    except AuthenticationError:
        if bearer(headers) is not None:  # a credential was presented and refused
            refusal = await limiter.api_failed(client_address(scope))
            if refusal is not None:
                raise refusal from None
        raise
    if needs != AUTHENTICATED:
        principal.require(needs)
    if needs == "admin" and principal.team is not None:
        # The dashboard's team admin: its own team's keys and data there, never
        # the admin API, which reaches every team (there is no team-admin API).
        raise PermissionDeniedError(
            f"This credential's 'admin' scope is limited to team '{principal.team}' in the "
            "dashboard; the admin API needs an admin credential without a team."
        )
    return principal
