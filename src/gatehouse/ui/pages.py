"""How a UI page is declared and answered: :func:`ui_route`, :func:`render`, :func:`redirect`.

Every UI route is a :class:`~gatehouse.server.routes.table.RouteSpec`, so it
passes the one authorization check of the route table: the ``ui:<role>``
scopes are checked by :func:`gatehouse.ui.session.authorize_ui` (a valid
session, a credential that still stands, a role at least the page's). On top
of that, :func:`ui_route` checks the CSRF token of every request that is not
GET or HEAD, answers errors as HTML pages, and sets the security headers
(a strict Content-Security-Policy, no framing, no caching of pages).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from gatehouse.core.errors import GatehouseError
from gatehouse.server.authz import PUBLIC, RouteScope
from gatehouse.server.routes.table import RouteSpec
from gatehouse.ui.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    LoginRequired,
    Role,
    UiSession,
)
from gatehouse.ui.state import ui_state

UiEndpoint = Callable[[Request], Awaitable[Response]]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def ui_route(
    method: str,
    path: str,
    endpoint: UiEndpoint,
    summary: str,
    *,
    role: Role | Literal["public"],
) -> RouteSpec:
    """A UI page or action at ``path`` (under ``/ui``) for sessions of at least ``role``.

    ``role="public"`` is for the login pages and static files alone: no session
    is needed (a non-GET one still needs the login form's CSRF token)."""
    if not path.startswith("/ui"):
        raise ValueError(f"UI routes live under /ui, not {path}")
    scope: RouteScope = PUBLIC if role == "public" else _ROLE_SCOPES[role]
    return RouteSpec(
        method,
        path,
        _Page(endpoint),
        summary=summary,
        tag="ui",
        scope=scope,
        error_shape=error_page,
    )


_ROLE_SCOPES: dict[Role, RouteScope] = {
    "viewer": "ui:viewer",
    "team_admin": "ui:team_admin",
    "admin": "ui:admin",
}


class _Page:
    """The endpoint behind the CSRF check, with errors as HTML and the headers set."""

    def __init__(self, endpoint: UiEndpoint) -> None:
        self.endpoint = endpoint
        self.__name__ = endpoint.__name__  # the OpenAPI operation id

    async def __call__(self, request: Request) -> Response:
        try:
            if request.method not in _SAFE_METHODS:
                await check_csrf(request)
            response = await self.endpoint(request)
        except LoginRequired as exc:
            response = _login_redirect(exc.next_path)
        except GatehouseError as exc:
            response = render(request, "error.html", {"error": exc}, status_code=exc.http_status)
        return secured(response)


async def check_csrf(request: Request) -> None:
    """403 unless the request carries this session's (or the login form's) CSRF token."""
    state = ui_state(request.scope)
    session: UiSession | None = getattr(request.state, "ui", None)
    if session is not None:
        expected = session.csrf
    else:
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        expected = state.sessions.login_token(nonce) if nonce else ""
    given = request.headers.get(CSRF_HEADER)
    if given is None and _is_form(request):
        given = _text((await request.form()).get(CSRF_FIELD))
    state.sessions.check_csrf(expected, given)


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def form(request: Request) -> FormData:
    """The submitted form (already parsed by the CSRF check when it was a form)."""
    return await request.form()


def session_of(request: Request) -> UiSession:
    """The checked session of a page that needs one (every role but ``public``)."""
    session: UiSession = request.state.ui
    return session


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """``template`` (under ``ui/templates``) rendered with ``context``, autoescaped.

    Every template sees ``request``, ``session`` (``None`` when logged out),
    ``csrf_token`` (the token for forms and ``fetch``) and ``asset(name)``."""
    state = ui_state(request.scope)
    session: UiSession | None = getattr(request.state, "ui", None)
    csrf = session.csrf if session is not None else ""
    values = {"request": request, "session": session, "csrf_token": csrf, **(context or {})}
    body = state.templates.get_template(template).render(values)
    return HTMLResponse(body, status_code=status_code)


def redirect(path: str, *, status_code: int = 303) -> RedirectResponse:
    """After a form post: GET ``path`` (a path of this site)."""
    if not path.startswith("/") or path.startswith("//"):
        path = "/ui"
    return RedirectResponse(path, status_code=status_code)


def secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("cache-control", "no-store")
    return response


def _login_redirect(next_path: str) -> Response:
    return redirect(f"/ui/login?next={quote(next_path, safe='/')}")


def error_page(error: GatehouseError) -> Response:
    """How the route table answers a UI route it refused: to the login page when
    there is no session, an HTML error page otherwise."""
    if isinstance(error, LoginRequired):
        return secured(_login_redirect(error.next_path))
    return _ErrorPage(error)


class _ErrorPage(Response):
    """An error page rendered when sent, where the request (and its templates) is known."""

    def __init__(self, error: GatehouseError) -> None:
        super().__init__(status_code=error.http_status)
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        page = render(
            Request(scope, receive),
            "error.html",
            {"error": self.error},
            status_code=self.error.http_status,
        )
        await secured(page)(scope, receive, send)
