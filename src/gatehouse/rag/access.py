"""Who may see a collection: its owner, and administrators.

A collection is owned by the key, team or organisation that created it (the
team by default, when the creating key belongs to one). Callers who are not
the owner get the same 404 as for a collection that does not exist, so a
collection's existence does not leak. Pure: no I/O.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from gatehouse.core.errors import ValidationFailedError
from gatehouse.core.principal import Principal

OwnerKind = Literal["key", "team", "org"]


class Owner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: OwnerKind
    id: str


def sees_everything(principal: Principal) -> bool:
    """Administrators (the ``admin`` scope without a team: with one, a team
    admin sees its team's only), the in-process caller, and every caller of a
    server without authentication."""
    if principal.kind in {"anonymous", "local", "master"}:
        return True
    return principal.has_scope("admin") and principal.team is None


def owner_for(principal: Principal, kind: OwnerKind | None) -> Owner | None:
    """The owner of a collection ``principal`` creates, sharing it at ``kind``
    (default: the team, else the key). ``None``: unowned, seen by administrators only."""
    if kind is None:
        kind = "team" if principal.team else "key"
        if _identity(principal, kind) is None:
            return None  # an administrator or an unauthenticated server
    found = _identity(principal, kind)
    if found is None:
        raise ValidationFailedError(
            f"this credential has no {kind} to own the collection", param="owner"
        )
    return Owner(kind=kind, id=found)


def may_access(owner: Owner | None, principal: Principal) -> bool:
    if sees_everything(principal):
        return True
    return owner is not None and _identity(principal, owner.kind) == owner.id


def _identity(principal: Principal, kind: OwnerKind) -> str | None:
    if kind == "team":
        return principal.team
    if kind == "org":
        return principal.org
    if principal.key_id is not None:
        return principal.key_id
    return principal.id if principal.kind == "jwt" else None
