"""Logs: the request log (metadata: who, model, deployment, status, tokens, cost,
latency) with filters and a detail view, limited to what the session may see.

Request and answer bodies are never stored in the ledger: with body logging on
(``observability.access_log.bodies``) they go, redacted, to the access log only.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.errors import NotFoundError
from gatehouse.core.records import iso
from gatehouse.store.ledger import EventQuery
from gatehouse.ui.nav import NAV, NavItem
from gatehouse.ui.overview import admin_of, event_scope
from gatehouse.ui.pages import render, session_of, ui_route

PAGE = 50
# Filter fields of the form -> EventQuery fields.
FILTERS = {
    "key": "key_id",
    "team": "team",
    "model": "model",
    "deployment": "deployment",
    "status": "status",
    "request_id": "request_id",
}


def _filters(request: Request) -> dict[str, str]:
    found = {}
    for name in FILTERS:
        value = request.query_params.get(name, "").strip()
        if value:
            found[name] = value[:200]
    return found


async def logs(request: Request) -> Response:
    session = session_of(request)
    filters = _filters(request)
    fields: dict[str, Any] = {FILTERS[name]: value for name, value in filters.items()}
    fields.update(event_scope(session))  # the session's limits win over the form's
    admin = admin_of(request)
    if admin is None:
        raise NotFoundError("This server keeps no request log (no governance store).")
    page = await admin.requests(
        EventQuery(**fields), limit=PAGE, cursor=request.query_params.get("cursor") or None
    )
    return render(
        request,
        "logs.html",
        {
            "events": page.events,
            "next_cursor": page.next_cursor,
            "filters": filters,
            "iso": iso,
            "bodies": _bodies_logged(request),
        },
    )


def _bodies_logged(request: Request) -> bool:
    access = request.app.state.settings.observability.access_log
    return bool(access.enabled and access.bodies)


async def request_detail(request: Request) -> Response:
    session = session_of(request)
    request_id = request.path_params["request_id"]
    admin = admin_of(request)
    if admin is None:
        raise NotFoundError("This server keeps no request log (no governance store).")
    # The session's scope goes into the ledger's query: a user's events are
    # stored under a pseudonym, which only the ledger can match.
    events = await admin.request(request_id, EventQuery(**event_scope(session)))
    return render(
        request,
        "log.html",
        {"request_id": request_id, "events": events, "iso": iso, "bodies": _bodies_logged(request)},
    )


NAV.append(NavItem("Logs", "/ui/logs", "viewer", "Recent requests, filtered", 60))

ROUTES = [
    ui_route("GET", "/ui/logs", logs, "Dashboard: the request log", role="viewer"),
    ui_route(
        "GET", "/ui/logs/{request_id}", request_detail, "Dashboard: one request", role="viewer"
    ),
]
