"""Keys and teams: list, search, create (secret shown once), revoke, rotate, budgets
and limits; the audit log.

Every change goes through :class:`gatehouse.gateway.admin.Admin`, as the admin
API's do, audited with the session's principal as the actor, which also refuses
to grant (or rotate a key holding) a scope the session's credential lacks. Team
admins see and change only their own team's keys, and cannot grant the
``admin`` scope; viewers see their team's keys (or their own key) read-only.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.config import LimitSpec
from gatehouse.core.errors import NotFoundError, PermissionDeniedError, ValidationFailedError
from gatehouse.core.records import Budget, KeyRecord, iso
from gatehouse.gateway.admin import (
    DEFAULT_SCOPES,
    Admin,
    CreatedKey,
    KeyCreate,
    KeyUpdate,
    SubjectPut,
)
from gatehouse.ui.nav import NAV, NavItem
from gatehouse.ui.pages import form, redirect, render, session_of, ui_route
from gatehouse.ui.session import UiSession

PERIODS = ("day", "week", "month", "total")
AUDIT_LIMIT = 200


def _admin(request: Request) -> Admin:
    governance = request.app.state.gateway.governance
    if governance is None:
        raise NotFoundError("Key administration needs the governance store (auth configured).")
    admin: Admin = governance.admin
    return admin


def visible(session: UiSession, record: KeyRecord) -> bool:
    """Whether this session may see the key: admins every key, others their team's
    (a key without a team sees only itself)."""
    if session.role == "admin":
        return True
    team = session.principal.team
    if team is not None:
        return record.team == team
    return record.id == session.principal.key_id


async def _key(request: Request, session: UiSession) -> KeyRecord:
    record = await _admin(request).key(request.path_params["id"])
    if not visible(session, record):
        # The same answer as for a key that does not exist: ids are not probed.
        raise NotFoundError(f"No key with id '{request.path_params['id']}'.", param="id")
    return record


def _matches(record: KeyRecord, query: str) -> bool:
    query = query.lower()
    fields = (record.id, record.name, record.team or "", record.user or "")
    return any(query in field.lower() for field in fields)


async def list_keys(request: Request) -> Response:
    session = session_of(request)
    query = request.query_params.get("q", "").strip()
    records = [r for r in await _admin(request).keys() if visible(session, r)]
    if query:
        records = [r for r in records if _matches(r, query)]
    records.sort(key=lambda r: (r.revoked_at is not None, -r.created_at))
    return render(
        request,
        "keys.html",
        {
            "keys": records,
            "q": query,
            "iso": iso,
            "scopes": _grantable(session),
            "default_scopes": [s for s in DEFAULT_SCOPES if s in _grantable(session)],
            "periods": PERIODS,
            "can_manage": session.allows("team_admin"),
        },
    )


def _grantable(session: UiSession) -> list[str]:
    """The scopes this session may give a key: those its credential holds, and
    a team admin never ``admin``."""
    held = session.principal.scopes
    return sorted(held if session.role == "admin" else held - {"admin"})


def _text(values: FormData, name: str) -> str | None:
    value = values.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _number(values: FormData, name: str, kind: type[int] | type[float]) -> Any:
    raw = _text(values, name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ValidationFailedError(f"{name} must be a number.", param=name) from None


def _budget(values: FormData) -> Budget | None:
    max_usd = _number(values, "budget_usd", float)
    if max_usd is None:
        return None
    period = _text(values, "budget_period") or "month"
    try:
        return Budget(max_usd=max_usd, period=period, hard=values.get("budget_soft") is None)
    except ValidationError as exc:
        raise ValidationFailedError(f"Budget: {exc.errors()[0]['msg']}.", param="budget") from None


def _limits(values: FormData) -> LimitSpec | None:
    fields = {name: _number(values, name, int) for name in ("rpm", "tpm", "max_parallel")}
    if all(value is None for value in fields.values()):
        return None
    try:
        return LimitSpec(**fields)
    except ValidationError as exc:
        raise ValidationFailedError(f"Limits: {exc.errors()[0]['msg']}.", param="limits") from None


def _body(model: type[KeyCreate] | type[KeyUpdate], fields: dict[str, Any]) -> Any:
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValidationFailedError(f"{where}: {first['msg']}.", param=where) from None


async def create_key(request: Request) -> Response:
    session = session_of(request)
    values = await form(request)
    scopes = [str(s) for s in values.getlist("scopes")] or DEFAULT_SCOPES
    if session.role != "admin" and "admin" in scopes:
        raise PermissionDeniedError("A team admin cannot grant the admin scope.", param="scopes")
    team = _text(values, "team") if session.role == "admin" else session.principal.team
    models = _text(values, "models")
    body = _body(
        KeyCreate,
        {
            "name": _text(values, "name") or "",
            "team": team,
            "user": _text(values, "user"),
            "scopes": scopes,
            "models": None
            if models is None
            else [m.strip() for m in models.split(",") if m.strip()],
            "budget": _budget(values),
            "limits": _limits(values),
        },
    )
    created = await _admin(request).create_key(
        body,
        actor=session.principal.id,
        held_scopes=session.principal.scopes,
        acting_key=session.principal.key_id,
    )
    return _shown_once(request, created, "created")


def _shown_once(request: Request, created: CreatedKey, verb: str) -> Response:
    """The one page that shows a key's secret: never cached, never shown again."""
    response = render(request, "key_secret.html", {"created": created, "verb": verb})
    response.headers["cache-control"] = "no-store"
    return response


async def show_key(request: Request) -> Response:
    session = session_of(request)
    record = await _key(request, session)
    return render(
        request,
        "key.html",
        {
            "key": record,
            "iso": iso,
            "periods": PERIODS,
            "can_manage": session.allows("team_admin"),
        },
    )


async def revoke_key(request: Request) -> Response:
    session = session_of(request)
    record = await _key(request, session)
    await _admin(request).revoke_key(record.id, actor=session.principal.id)
    return redirect(f"/ui/keys/{record.id}")


async def rotate_key(request: Request) -> Response:
    session = session_of(request)
    record = await _key(request, session)
    created = await _admin(request).rotate_key(
        record.id,
        actor=session.principal.id,
        held_scopes=session.principal.scopes,
        acting_key=session.principal.key_id,
    )
    return _shown_once(request, created, "rotated")


async def set_key_limits(request: Request) -> Response:
    session = session_of(request)
    record = await _key(request, session)
    values = await form(request)
    body = _body(KeyUpdate, {"budget": _budget(values), "limits": _limits(values)})
    await _admin(request).update_key(
        record.id,
        body,
        actor=session.principal.id,
        held_scopes=session.principal.scopes,
        acting_key=session.principal.key_id,
    )
    return redirect(f"/ui/keys/{record.id}")


async def list_teams(request: Request) -> Response:
    session = session_of(request)
    teams = await _admin(request).subjects("team")
    if session.role != "admin":
        teams = [t for t in teams if t.id == session.principal.team]
    return render(
        request,
        "teams.html",
        {"teams": teams, "periods": PERIODS, "can_manage": session.role == "admin"},
    )


async def put_team(request: Request) -> Response:
    session = session_of(request)
    values = await form(request)
    team = _text(values, "team")
    if team is None:
        raise ValidationFailedError("A team needs a name.", param="team")
    try:
        body = SubjectPut(budget=_budget(values), limits=_limits(values))
    except ValidationError as exc:
        raise ValidationFailedError(str(exc.errors()[0]["msg"])) from None
    await _admin(request).put_subject("team", team, body, actor=session.principal.id)
    return redirect("/ui/teams")


async def audit(request: Request) -> Response:
    entries = await _admin(request).audit(since=0.0, limit=AUDIT_LIMIT)
    entries.sort(key=lambda e: -e.at)
    return render(request, "audit.html", {"entries": entries, "iso": iso})


NAV.extend(
    [
        NavItem("Keys", "/ui/keys", "viewer", "Create, search, revoke and rotate keys", 20),
        NavItem("Teams", "/ui/teams", "team_admin", "Team budgets and limits", 30),
        NavItem("Audit", "/ui/audit", "admin", "Who changed what", 40),
    ]
)

ROUTES = [
    ui_route("GET", "/ui/keys", list_keys, "Dashboard: keys, searchable", role="viewer"),
    ui_route("POST", "/ui/keys", create_key, "Dashboard: create a key", role="team_admin"),
    ui_route("GET", "/ui/keys/{id}", show_key, "Dashboard: one key", role="viewer"),
    ui_route(
        "POST", "/ui/keys/{id}/revoke", revoke_key, "Dashboard: revoke a key", role="team_admin"
    ),
    ui_route(
        "POST", "/ui/keys/{id}/rotate", rotate_key, "Dashboard: rotate a key", role="team_admin"
    ),
    ui_route(
        "POST",
        "/ui/keys/{id}/limits",
        set_key_limits,
        "Dashboard: a key's budget and limits",
        role="team_admin",
    ),
    ui_route("GET", "/ui/teams", list_teams, "Dashboard: teams", role="team_admin"),
    ui_route("POST", "/ui/teams", put_team, "Dashboard: a team's budget and limits", role="admin"),
    ui_route("GET", "/ui/audit", audit, "Dashboard: the audit log", role="admin"),
]
