"""Routes as data: one place that both the router and the OpenAPI schema read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    stream_model: type[BaseModel] | None = None
    tag: str = "default"

    def route(self) -> Route:
        return Route(self.path, self.endpoint, methods=[self.method])
