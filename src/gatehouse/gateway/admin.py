"""Administration of keys, teams, users and budgets, with the audit log.

The admin HTTP API and the CLI both call :class:`Admin`; every change is
audited (who, what, when, before/after, never a secret) by the store in the
same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from gatehouse.core.config import LimitSpec
from gatehouse.core.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationFailedError,
)
from gatehouse.core.ids import Clock
from gatehouse.core.principal import ALL_SCOPES
from gatehouse.core.records import (
    AuditEntry,
    Budget,
    KeyRecord,
    SpendRow,
    SubjectKind,
    SubjectRecord,
    UsageEvent,
    iso,
)
from gatehouse.gateway.keys import Directory, new_key, new_secret
from gatehouse.store.directory import DirectoryStore
from gatehouse.store.ledger import EventQuery, LedgerStore, decode_cursor, encode_cursor
from gatehouse.store.rollups import EVENTS_CLASS, SpendFilter, SpendGroup

DEFAULT_SCOPES = ["chat", "embeddings"]


_BOUNDED = frozenset({"models", "limits", "budget"})


def check_within(own: KeyRecord, body: KeyUpdate, *, fields: Iterable[str] = ()) -> None:
    """403 naming the first field of ``body`` (a key being created or changed) that
    would let the key do more than ``own``, the acting credential's own key: a model
    outside its models, or a rate limit or budget looser than its own (none at all
    is looser than any). Compared: ``fields``, else those ``body`` sets."""
    fields = set(fields) or body.model_fields_set
    if own.models is not None and "models" in fields:
        outside = None if body.models is None else sorted(set(body.models) - set(own.models))
        if outside is None or outside:
            what = "every model" if outside is None else f"the model '{outside[0]}'"
            raise PermissionDeniedError(
                f"Your key is limited to {sorted(own.models)}, so it cannot give a key {what}.",
                param="models",
                code="model_not_held",
            )
    if own.limits is not None and "limits" in fields:
        for name in ("rpm", "tpm", "max_parallel"):
            ceiling: int | None = getattr(own.limits, name)
            wanted: int | None = None if body.limits is None else getattr(body.limits, name)
            if ceiling is not None and (wanted is None or wanted > ceiling):
                raise PermissionDeniedError(
                    f"Your key's {name} is {ceiling}, so it cannot give a key "
                    + ("no limit." if wanted is None else f"{wanted}."),
                    param=f"limits.{name}",
                    code="limit_not_held",
                )
    if own.budget is not None and "budget" in fields:
        mine, wanted_budget = own.budget, body.budget
        if (
            wanted_budget is None
            or wanted_budget.period != mine.period
            or wanted_budget.max_usd > mine.max_usd
            or (mine.hard and not wanted_budget.hard)
        ):
            kind = "hard" if mine.hard else "soft"
            raise PermissionDeniedError(
                f"Your key's budget is {mine.max_usd:g} USD a {mine.period} ({kind}), so it "
                "can only give a key a budget of the same period, no larger"
                + (" and hard." if mine.hard else "."),
                param="budget",
                code="budget_not_held",
            )


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _known_scopes(scopes: list[str] | None) -> list[str] | None:
    if scopes is None:
        return None
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s) {unknown}; known: {sorted(ALL_SCOPES)}")
    return sorted(set(scopes))


def check_grantable(held: frozenset[str], scopes: Iterable[str], *, doing: str) -> None:
    """403 naming the first of ``scopes`` that ``held`` (the acting credential's
    scopes) lacks: nobody hands a key more than they hold themselves."""
    missing = sorted(set(scopes) - held)
    if missing:
        raise PermissionDeniedError(
            f"Your credential lacks the '{missing[0]}' scope, so it cannot {doing}.",
            param="scopes",
            code="scope_not_held",
        )


class KeyUpdate(_Body):
    """Fields to change; a field sent as ``null`` is cleared."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    team: str | None = Field(default=None, min_length=1, max_length=200)
    user: str | None = Field(default=None, min_length=1, max_length=200)
    org: str | None = Field(default=None, min_length=1, max_length=200)
    scopes: list[str] | None = None
    models: list[str] | None = None
    expires_at: AwareDatetime | None = None
    limits: LimitSpec | None = None
    budget: Budget | None = None
    metadata: dict[str, Any] | None = None

    _scopes = field_validator("scopes")(_known_scopes)


class KeyCreate(KeyUpdate):
    """A new key: ``name`` is required, everything else as for an update."""

    name: str = Field(min_length=1, max_length=200)


class SubjectPut(_Body):
    limits: LimitSpec | None = None
    budget: Budget | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RequestPage:
    events: list[UsageEvent]
    next_cursor: str | None

    def public(self) -> dict[str, Any]:
        return {
            "events": [event.public() for event in self.events],
            "next_cursor": self.next_cursor,
        }


class CreatedKey(BaseModel):
    """What creating or rotating a key returns: the only time ``key`` is shown."""

    key: str
    record: KeyRecord

    def public(self) -> dict[str, Any]:
        return {**self.record.public(), "key": self.key}


class Admin:
    def __init__(
        self, store: DirectoryStore, ledger: LedgerStore, directory: Directory, *, clock: Clock
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._directory = directory
        self._clock = clock

    # -- keys --

    # ``held_scopes``: the acting credential's scopes (the CLI and the master key
    # hold them all); a key never gets, or has rotated, a scope its actor lacks.
    # ``acting_key``: the id of the acting credential's key (none for the CLI, the
    # master key and a single-sign-on session); a key it creates or changes gets
    # no model outside that key's, nor a looser rate limit or budget.

    async def create_key(
        self,
        body: KeyCreate,
        *,
        actor: str,
        held_scopes: frozenset[str],
        acting_key: str | None = None,
    ) -> CreatedKey:
        scopes = body.scopes if body.scopes is not None else DEFAULT_SCOPES
        check_grantable(held_scopes, scopes, doing="grant it")
        if acting_key is not None:
            # A field a new key is not given is none at all: compared too.
            check_within(await self.key(acting_key), body, fields=_BOUNDED)
        now = self._clock()
        key_id, key, salt, digest = new_key()
        record = KeyRecord(
            id=key_id,
            name=body.name,
            salt=salt,
            digest=digest,
            team=body.team,
            user=body.user,
            org=body.org,
            scopes=scopes,
            models=body.models,
            expires_at=body.expires_at.timestamp() if body.expires_at else None,
            limits=body.limits,
            budget=body.budget,
            metadata=body.metadata,
            created_at=now,
            updated_at=now,
        )
        await self._store.put_key(record, actor=actor, action="create", before=None)
        return CreatedKey(key=key, record=record)

    async def keys(self, *, team: str | None = None, user: str | None = None) -> list[KeyRecord]:
        return await self._store.keys(team=team, user=user)

    async def key(self, key_id: str) -> KeyRecord:
        record = await self._store.key(key_id)
        if record is None:
            raise NotFoundError(f"No key with id '{key_id}'.", param="id")
        return record

    async def update_key(
        self,
        key_id: str,
        body: KeyUpdate,
        *,
        actor: str,
        held_scopes: frozenset[str],
        acting_key: str | None = None,
    ) -> KeyRecord:
        if "scopes" in body.model_fields_set:
            granted = body.scopes if body.scopes is not None else DEFAULT_SCOPES
            check_grantable(held_scopes, granted, doing="grant it")
        if acting_key is not None:
            check_within(await self.key(acting_key), body)
        before = await self.key(key_id)
        changes: dict[str, Any] = {
            name: getattr(body, name) for name in body.model_fields_set if name != "expires_at"
        }
        if "expires_at" in body.model_fields_set:
            changes["expires_at"] = body.expires_at.timestamp() if body.expires_at else None
        if "scopes" in changes and changes["scopes"] is None:
            changes["scopes"] = DEFAULT_SCOPES
        if "name" in changes and changes["name"] is None:
            changes.pop("name")
        changes["updated_at"] = self._clock()
        after = before.model_copy(update=changes)
        after = KeyRecord.model_validate(after.model_dump())
        await self._store.put_key(after, actor=actor, action="update", before=before)
        await self._directory.refresh()
        return after

    async def rotate_key(
        self,
        key_id: str,
        *,
        actor: str,
        held_scopes: frozenset[str],
        acting_key: str | None = None,
    ) -> CreatedKey:
        before = await self.key(key_id)
        # The new secret carries the key's scopes, models, limits and budget to
        # whoever rotated it.
        check_grantable(held_scopes, before.scopes, doing="rotate a key that holds it")
        if acting_key is not None:
            held = KeyUpdate(models=before.models, limits=before.limits, budget=before.budget)
            check_within(await self.key(acting_key), held, fields=_BOUNDED)
        if before.revoked_at is not None:
            raise ConflictError(f"Key '{key_id}' is revoked and cannot be rotated.")
        key, salt, digest = new_secret(key_id)
        after = before.model_copy(
            update={"salt": salt, "digest": digest, "updated_at": self._clock()}
        )
        await self._store.put_key(after, actor=actor, action="rotate", before=before)
        await self._directory.refresh()
        return CreatedKey(key=key, record=after)

    async def revoke_key(self, key_id: str, *, actor: str) -> KeyRecord:
        before = await self.key(key_id)
        if before.revoked_at is not None:
            return before
        now = self._clock()
        after = before.model_copy(update={"revoked_at": now, "updated_at": now})
        await self._store.put_key(after, actor=actor, action="revoke", before=before)
        await self._directory.refresh()
        return after

    # -- teams and users --

    async def subjects(self, kind: SubjectKind) -> list[SubjectRecord]:
        return await self._store.subjects(kind)

    async def subject(self, kind: SubjectKind, subject_id: str) -> SubjectRecord:
        record = await self._store.subject(kind, subject_id)
        if record is None:
            raise NotFoundError(f"No {kind} '{subject_id}'.", param="id")
        return record

    async def put_subject(
        self, kind: SubjectKind, subject_id: str, body: SubjectPut, *, actor: str
    ) -> tuple[SubjectRecord, bool]:
        """Create or replace a team or user; returns the record and whether it is new."""
        now = self._clock()
        before = await self._store.subject(kind, subject_id)
        after = SubjectRecord(
            kind=kind,
            id=subject_id,
            limits=body.limits,
            budget=body.budget,
            metadata=body.metadata,
            created_at=before.created_at if before else now,
            updated_at=now,
        )
        action = "create" if before is None else "update"
        await self._store.put_subject(after, actor=actor, action=action, before=before)
        await self._directory.refresh()
        return after, before is None

    async def delete_subject(self, kind: SubjectKind, subject_id: str, *, actor: str) -> None:
        before = await self.subject(kind, subject_id)
        await self._store.delete_subject(before, actor=actor, at=self._clock())
        await self._directory.refresh()

    # -- reports --

    async def spend(
        self,
        group_by: SpendGroup,
        *,
        since: float,
        where: Mapping[SpendFilter, str] | None = None,
    ) -> list[SpendRow]:
        return await self._ledger.spend(group_by, since=since, where=where)

    async def ledger(self, *, since: float, limit: int) -> list[UsageEvent]:
        return await self._ledger.events(since=since, limit=limit)

    async def requests(
        self, query: EventQuery, *, limit: int, cursor: str | None = None
    ) -> RequestPage:
        """The request log: events matching ``query``, newest first, one page
        after ``cursor`` (a token from an earlier page)."""
        after = None
        if cursor is not None:
            try:
                after = decode_cursor(cursor)
            except ValueError as exc:
                raise ValidationFailedError(f"{exc}.", param="cursor") from None
        events, following = await self._ledger.page(query, limit=limit, after=after)
        return RequestPage(
            events=events, next_cursor=encode_cursor(following) if following else None
        )

    async def request(self, request_id: str, within: EventQuery | None = None) -> list[UsageEvent]:
        """What happened to one request: its events, oldest first, only those
        ``within`` a caller's scope when given (the ledger's query, so a user
        filter is matched as stored: pseudonymised); 404 if none is kept
        (naming the retention horizon when events have been purged)."""
        events = await self._ledger.request(request_id, within)
        if not events:
            message = f"No usage events for request '{request_id}'."
            horizon = await self._ledger.purged_before(EVENTS_CLASS)
            if horizon > 0:
                message += f" Events before {iso(horizon)} have been purged (retention)."
            raise NotFoundError(message, param="request_id")
        return events

    async def audit(self, *, since: float, limit: int) -> list[AuditEntry]:
        return await self._store.audit(since=since, limit=limit)


def parse_since(value: str | None) -> float:
    """An ISO 8601 time (a naive one is UTC) as epoch seconds; ``None`` is the beginning."""
    if value is None or value == "":
        return 0.0
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{value}' is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
