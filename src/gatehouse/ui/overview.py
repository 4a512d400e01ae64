"""Overview: requests, errors, latency percentiles, tokens and spend over time, by
model group, team and key; top keys by spend; cache hit ratio.

Read from the request log (the ledger's events) over a window, limited to what
the session may see (:func:`event_scope`); charts are server-side SVG.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.records import UsageEvent
from gatehouse.evals.svg import bars
from gatehouse.gateway.admin import Admin
from gatehouse.store.ledger import EventQuery
from gatehouse.ui import stats
from gatehouse.ui.nav import NAV, NavItem
from gatehouse.ui.pages import render, session_of, ui_route
from gatehouse.ui.session import UiSession

# Requests read for one overview: past this the page says it counted a sample.
MAX_EVENTS = 20_000
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    label: str
    seconds: float
    step: float


WINDOWS = {
    w.name: w
    for w in (
        Window("1h", "last hour", 3600, 300),
        Window("24h", "last 24 hours", 86400, 7200),
        Window("7d", "last 7 days", 7 * 86400, 86400),
    )
}


def event_scope(session: UiSession) -> dict[str, Any]:
    """The request-log filter of what this session may see: admins everything,
    others their team's requests, else their own key's (or their own, as a user)."""
    if session.role == "admin":
        return {}
    principal = session.principal
    if principal.team is not None:
        return {"team": principal.team}
    if principal.key_id is not None:
        return {"key_id": principal.key_id}
    return {"user": principal.user or principal.id}


def admin_of(request: Request) -> Admin | None:
    """The admin service; ``None`` on a gateway built without governance (no request log)."""
    governance = request.app.state.gateway.governance
    return None if governance is None else governance.admin


async def recent_events(admin: Admin, query: EventQuery) -> tuple[list[UsageEvent], bool]:
    """Events matching ``query``, newest first, up to :data:`MAX_EVENTS`; and
    whether there were more."""
    events: list[UsageEvent] = []
    cursor: str | None = None
    while len(events) < MAX_EVENTS:
        page = await admin.requests(query, limit=_PAGE, cursor=cursor)
        events.extend(page.events)
        cursor = page.next_cursor
        if cursor is None:
            return events, False
    return events, True


async def overview(request: Request) -> Response:
    session = session_of(request)
    window = WINDOWS.get(request.query_params.get("window", "24h"), WINDOWS["24h"])
    admin = admin_of(request)
    end = request.app.state.gateway.governance.clock() if admin is not None else time.time()
    start = end - window.seconds
    query = EventQuery(since=start, **event_scope(session))
    events, sampled = ([], False) if admin is None else await recent_events(admin, query)
    buckets = stats.over_time(events, start=start, end=end, step=window.step)
    labels = [b.label for b in buckets]
    charts = [
        bars("Requests", labels, [b.requests for b in buckets]),
        bars("Errors", labels, [b.errors for b in buckets]),
        bars("Latency p95 (ms)", labels, [round(b.p95_ms, 1) for b in buckets], unit=" ms"),
        bars("Tokens", labels, [b.tokens for b in buckets]),
        bars("Spend (USD)", labels, [round(b.cost_usd, 6) for b in buckets], unit=" USD"),
    ]
    return render(
        request,
        "overview.html",
        {
            "window": window,
            "windows": WINDOWS.values(),
            "totals": stats.totals(events),
            "sampled": sampled,
            "charts": charts,
            "by_model": stats.grouped(events, "model"),
            "by_team": stats.grouped(events, "team"),
            "by_key": stats.grouped(events, "key_id"),
            "logged": admin is not None,
        },
    )


NAV.append(NavItem("Overview", "/ui/overview", "viewer", "Usage, errors, latency and spend", 10))

ROUTES = [
    ui_route("GET", "/ui/overview", overview, "Dashboard: usage and spend", role="viewer"),
]
