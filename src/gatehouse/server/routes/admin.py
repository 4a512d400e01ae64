"""The admin API: keys, teams, users, spend, ledger, request log and audit, under ``/admin``.

Every route declares the ``admin`` scope (the master key, or a virtual key or
JWT granted it), which the route table checks before the endpoint runs. The work happens in
:class:`gatehouse.gateway.admin.Admin`; these endpoints only translate HTTP.
"""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.errors import NotFoundError, ValidationFailedError
from gatehouse.core.principal import Principal
from gatehouse.core.records import SubjectKind
from gatehouse.gateway.admin import Admin, KeyCreate, KeyUpdate, SubjectPut, parse_since
from gatehouse.gateway.governance import Governance
from gatehouse.gateway.guard_policies import GuardPolicies, GuardPolicyPut, public
from gatehouse.server.http import JSONResponse, parse_body
from gatehouse.server.routes.table import RouteSpec
from gatehouse.store.guard_policies import PolicyKind
from gatehouse.store.ledger import EventQuery
from gatehouse.store.rollups import GROUP_COLUMNS, SPEND_GROUPS, SpendFilter

MAX_LIMIT = 10_000
REQUESTS_MAX_LIMIT = 1000
# The request log's filters: query parameter -> EventQuery field.
REQUEST_FILTERS: dict[str, str] = {
    **cast(dict[str, str], GROUP_COLUMNS),
    "status": "status",
    "request_id": "request_id",
}


async def _admin(request: Request) -> tuple[Admin, str]:
    """The admin service and the caller's id (the route table checked the scope)."""
    governance: Governance | None = request.app.state.gateway.governance
    if governance is None:
        raise NotFoundError("Administration is not enabled on this server.")
    return governance.admin, _caller(request).id


def _caller(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _since(request: Request, name: str = "since") -> float:
    try:
        return parse_since(request.query_params.get(name))
    except ValueError as exc:
        raise ValidationFailedError(str(exc), param=name) from None


def _limit(request: Request, default: int = 100, maximum: int = MAX_LIMIT) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ValidationFailedError(f"limit must be an integer from 1 to {maximum}.", param="limit")
    return int(raw)


# -- keys --


async def create_key(request: Request) -> Response:
    admin, actor = await _admin(request)
    body = await parse_body(request, KeyCreate)
    caller = _caller(request)
    created = await admin.create_key(
        body, actor=actor, held_scopes=caller.scopes, acting_key=caller.key_id
    )
    return JSONResponse(created.public(), status_code=201)


async def list_keys(request: Request) -> Response:
    admin, _ = await _admin(request)
    records = await admin.keys(
        team=request.query_params.get("team"), user=request.query_params.get("user")
    )
    return JSONResponse({"keys": [record.public() for record in records]})


async def get_key(request: Request) -> Response:
    admin, _ = await _admin(request)
    return JSONResponse((await admin.key(request.path_params["id"])).public())


async def update_key(request: Request) -> Response:
    admin, actor = await _admin(request)
    body = await parse_body(request, KeyUpdate)
    caller = _caller(request)
    record = await admin.update_key(
        request.path_params["id"],
        body,
        actor=actor,
        held_scopes=caller.scopes,
        acting_key=caller.key_id,
    )
    return JSONResponse(record.public())


async def rotate_key(request: Request) -> Response:
    admin, actor = await _admin(request)
    caller = _caller(request)
    created = await admin.rotate_key(
        request.path_params["id"], actor=actor, held_scopes=caller.scopes, acting_key=caller.key_id
    )
    return JSONResponse(created.public())


async def revoke_key(request: Request) -> Response:
    admin, actor = await _admin(request)
    record = await admin.revoke_key(request.path_params["id"], actor=actor)
    return JSONResponse(record.public())


# -- teams and users --


def _subject_routes(kind: SubjectKind) -> list[RouteSpec]:
    plural = f"{kind}s"

    async def listing(request: Request) -> Response:
        admin, _ = await _admin(request)
        return JSONResponse({plural: [r.public() for r in await admin.subjects(kind)]})

    async def get(request: Request) -> Response:
        admin, _ = await _admin(request)
        return JSONResponse((await admin.subject(kind, request.path_params["id"])).public())

    async def put(request: Request) -> Response:
        admin, actor = await _admin(request)
        body = await parse_body(request, SubjectPut)
        record, created = await admin.put_subject(
            kind, request.path_params["id"], body, actor=actor
        )
        return JSONResponse(record.public(), status_code=201 if created else 200)

    async def delete(request: Request) -> Response:
        admin, actor = await _admin(request)
        await admin.delete_subject(kind, request.path_params["id"], actor=actor)
        return JSONResponse({"id": request.path_params["id"], "deleted": True})

    path = f"/admin/{plural}"
    return [
        _spec("GET", path, listing, f"List {plural}"),
        _spec("GET", path + "/{id}", get, f"Describe one {kind}"),
        _spec(
            "PUT",
            path + "/{id}",
            put,
            f"Create or replace a {kind} (limits, budget)",
            request_model=SubjectPut,
        ),
        _spec("DELETE", path + "/{id}", delete, f"Delete a {kind}"),
    ]


# -- guard policies of keys and teams --


def _guard_routes(kind: PolicyKind) -> list[RouteSpec]:
    path = f"/admin/{kind}s/{{id}}/guard"

    async def get(request: Request) -> Response:
        policies = await _guard_policies(request)
        return JSONResponse(public(await policies.get(kind, request.path_params["id"])))

    async def put(request: Request) -> Response:
        policies = await _guard_policies(request)
        body = await parse_body(request, GuardPolicyPut)
        _, actor = await _admin(request)
        policy, created = await policies.put(kind, request.path_params["id"], body, actor=actor)
        return JSONResponse(public(policy), status_code=201 if created else 200)

    async def delete(request: Request) -> Response:
        policies = await _guard_policies(request)
        _, actor = await _admin(request)
        await policies.delete(kind, request.path_params["id"], actor=actor)
        return JSONResponse({"kind": kind, "id": request.path_params["id"], "deleted": True})

    return [
        _spec("GET", path, get, f"A {kind}'s guard policy (set through this API)"),
        _spec(
            "PUT",
            path,
            put,
            f"Set a {kind}'s guard policy: entity actions over the default's",
            request_model=GuardPolicyPut,
        ),
        _spec("DELETE", path, delete, f"Remove a {kind}'s guard policy"),
    ]


async def _guard_policies(request: Request) -> GuardPolicies:
    governance: Governance | None = request.app.state.gateway.governance
    if governance is None:
        raise NotFoundError("Administration is not enabled on this server.")
    return governance.guard_policies


# -- reports --


async def spend(request: Request) -> Response:
    admin, _ = await _admin(request)
    values = _filters(request, list(GROUP_COLUMNS), ("group_by", "since"))
    group_by = request.query_params.get("group_by", "key")
    if group_by not in SPEND_GROUPS:
        raise ValidationFailedError(
            f"group_by must be one of {list(SPEND_GROUPS)}.", param="group_by"
        )
    where = cast(dict[SpendFilter, str], values)  # _filters kept only GROUP_COLUMNS' names
    rows = await admin.spend(group_by, since=_since(request), where=where)
    return JSONResponse({"rows": [row.model_dump() for row in rows]})


def _filters(request: Request, filters: list[str], others: tuple[str, ...]) -> dict[str, str]:
    """The values of ``filters`` in the query string; 400 naming an empty or
    overlong one, or a parameter that is neither a filter nor one of ``others``
    (a misspelt filter must not silently match everything)."""
    params = request.query_params
    for name in params:
        if name not in filters and name not in others:
            known = sorted([*filters, *others])
            raise ValidationFailedError(f"Unknown parameter '{name}'; known: {known}.", param=name)
    found: dict[str, str] = {}
    for name in filters:
        value = params.get(name)
        if value is not None:
            if not value or len(value) > 200:
                raise ValidationFailedError(f"{name} must be 1 to 200 characters.", param=name)
            found[name] = value
    return found


def _event_query(request: Request) -> EventQuery:
    """The request log's filters from the query string; 400 naming a bad one."""
    values = _filters(request, list(REQUEST_FILTERS), ("since", "until", "limit", "cursor"))
    fields: dict[str, Any] = {REQUEST_FILTERS[name]: value for name, value in values.items()}
    params = request.query_params
    if params.get("since"):
        fields["since"] = _since(request)
    if params.get("until"):
        fields["until"] = _since(request, "until")
        if fields["until"] <= fields.get("since", 0.0):
            raise ValidationFailedError("until must be later than since.", param="until")
    return EventQuery(**fields)


async def requests(request: Request) -> Response:
    admin, _ = await _admin(request)
    query = _event_query(request)
    limit = _limit(request, default=50, maximum=REQUESTS_MAX_LIMIT)
    page = await admin.requests(query, limit=limit, cursor=request.query_params.get("cursor"))
    return JSONResponse(page.public())


async def request_events(request: Request) -> Response:
    admin, _ = await _admin(request)
    request_id = request.path_params["request_id"]
    events = await admin.request(request_id)
    return JSONResponse({"request_id": request_id, "events": [event.public() for event in events]})


async def ledger(request: Request) -> Response:
    admin, _ = await _admin(request)
    events = await admin.ledger(since=_since(request), limit=_limit(request))
    return JSONResponse({"events": [event.public() for event in events]})


async def audit(request: Request) -> Response:
    admin, _ = await _admin(request)
    entries = await admin.audit(since=_since(request), limit=_limit(request))
    return JSONResponse({"entries": [entry.public() for entry in entries]})


def _spec(method: str, path: str, endpoint: Any, summary: str, **extra: Any) -> RouteSpec:
    return RouteSpec(method, path, endpoint, summary=summary, tag="admin", scope="admin", **extra)


ROUTES = [
    _spec("POST", "/admin/keys", create_key, "Create a virtual key", request_model=KeyCreate),
    _spec("GET", "/admin/keys", list_keys, "List keys (never their secrets)"),
    _spec("GET", "/admin/keys/{id}", get_key, "Describe one key"),
    _spec("PATCH", "/admin/keys/{id}", update_key, "Update a key", request_model=KeyUpdate),
    _spec("POST", "/admin/keys/{id}/rotate", rotate_key, "Rotate a key's secret"),
    _spec("DELETE", "/admin/keys/{id}", revoke_key, "Revoke a key"),
    *_subject_routes("org"),
    *_subject_routes("team"),
    *_subject_routes("user"),
    *_guard_routes("key"),
    *_guard_routes("team"),
    _spec(
        "GET",
        "/admin/spend",
        spend,
        "Spend per key, team, user, org, model, deployment or day, from the daily rollups",
    ),
    _spec("GET", "/admin/ledger", ledger, "Usage events from the ledger"),
    _spec(
        "GET",
        "/admin/requests",
        requests,
        "The request log: usage events, filtered, newest first, cursor-paginated",
    ),
    _spec(
        "GET",
        "/admin/requests/{request_id}",
        request_events,
        "What happened to one request: its usage events",
    ),
    _spec("GET", "/admin/audit", audit, "The audit log of admin actions"),
]
