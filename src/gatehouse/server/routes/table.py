"""Routes as data: one place that both the router and the OpenAPI schema read.

Every route names the scope it needs (``scope=``, no default, so a new route
cannot forget), and :meth:`RouteSpec.route` wraps each endpoint in the one
check of it: :func:`gatehouse.server.authz.authorize`. The principal it finds
is left in the request's state for the endpoint (``request.state.principal``,
or ``scope["state"]["principal"]`` for the raw hot routes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gatehouse.core.errors import GatehouseError
from gatehouse.server.authz import RouteScope, authorize

Endpoint = Callable[[Request], Awaitable[Response]]
RawEndpoint = Callable[[Scope, Receive, Send], Awaitable[None]]
ErrorShape = Callable[[GatehouseError], Response]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    endpoint: Endpoint | RawEndpoint
    summary: str
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    stream_model: type[BaseModel] | None = None
    tag: str = "default"
    # A raw ASGI endpoint: the hot routes, dispatched to before Starlette's router
    # (see ``server.middleware.HotRoutes``) and wrapped so Starlette does not
    # build a Request/Response around them either.
    raw: bool = False
    # What a caller needs: a scope ("chat", "rag:read", "admin", ...),
    # ``AUTHENTICATED`` (any valid credential) or ``PUBLIC`` (probes, metrics).
    scope: RouteScope = field(kw_only=True)
    # How this route's errors look, where not in the OpenAI shape (the
    # Anthropic route answers in Anthropic's): applied to refused credentials too.
    error_shape: ErrorShape | None = None

    def route(self) -> Route:
        return Route(self.path, self.guarded(), methods=[self.method])

    def guarded(self) -> _Asgi:
        """The endpoint as an ASGI app behind the route's one authorization check."""
        return _Asgi(self)


class _Asgi:
    """The endpoint behind :func:`authorize`, as an ASGI app (Starlette would
    otherwise wrap a plain function as a ``Request -> Response`` endpoint)."""

    __slots__ = ("endpoint", "error_shape", "needs", "raw")

    def __init__(self, spec: RouteSpec) -> None:
        self.needs = spec.scope
        self.endpoint = spec.endpoint
        self.raw = spec.raw
        self.error_shape = spec.error_shape

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            principal = await authorize(scope, self.needs)
        except GatehouseError as exc:
            if self.error_shape is None:
                raise
            await self.error_shape(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        if self.raw:
            await cast(RawEndpoint, self.endpoint)(scope, receive, send)
            return
        response = await cast(Endpoint, self.endpoint)(Request(scope, receive, send))
        await response(scope, receive, send)
