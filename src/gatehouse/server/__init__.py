"""The HTTP face of gatehouse: the ASGI app factory, routes and the runner."""

from gatehouse.server.app import create_app

__all__ = ["create_app"]
