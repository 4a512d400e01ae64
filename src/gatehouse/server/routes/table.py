"""Routes as data: one place that both the router and the OpenAPI schema read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
RawEndpoint = Callable[[Scope, Receive, Send], Awaitable[None]]


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

    def route(self) -> Route:
        if self.raw:
            return Route(self.path, _Asgi(cast(RawEndpoint, self.endpoint)), methods=[self.method])
        return Route(self.path, cast(Endpoint, self.endpoint), methods=[self.method])


class _Asgi:
    """Marks a function as an ASGI app for Starlette, which otherwise wraps
    every plain function as a ``Request -> Response`` endpoint."""

    def __init__(self, endpoint: RawEndpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.endpoint(scope, receive, send)
