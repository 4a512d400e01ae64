"""A user's rows in the SQL store: found for export, deleted or anonymised for erasure.

What belongs to a user ``U`` (with pseudonyms on, rows may hold ``U`` or its
pseudonym: both are matched):

- usage events whose ``user`` is ``U``, whose principal is ``jwt:U``, or made
  with one of ``U``'s keys;
- daily rollups whose ``user`` is ``U``;
- stored responses created by one of ``U``'s keys (``user``) or naming ``U`` as
  their end user (``end_user``, the request's ``user`` field);
- ``U``'s keys (``keys.user``) and ``U``'s user record (limits, budget);
- audit entries about ``U`` or ``U``'s keys, or made by ``U``;
- prompt templates created by ``U`` (as ``jwt:U``) or with one of ``U``'s keys.

Erasure deletes the events, the responses and the user record; moves the
rollups' rows to the user ``''`` (so team, key and model spend stay exact);
revokes ``U``'s keys and clears their ``user``; and rewrites the audit
entries so that ``U`` no longer appears in them, and the templates'
``created_by`` likewise (the templates stay: they are their team's). All in one transaction,
with a compliance entry in the audit log naming ``U`` only by its
:func:`~gatehouse.core.pseudonyms.subject_tag`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, cast, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gatehouse.core.pseudonyms import JWT_PREFIX, Pseudonyms, subject_tag
from gatehouse.core.records import AuditEntry, KeyRecord, UsageEvent
from gatehouse.store import schema
from gatehouse.store.database import Database
from gatehouse.store.directory import record_change
from gatehouse.store.ledger import EVENT_COLUMNS
from gatehouse.store.rollups import DIMENSIONS, MEASURES

ERASED = "[erased]"  # what an erased user id reads as in rewritten audit entries


@dataclass
class UserRows:
    """Everything the SQL store holds about one user."""

    events: list[UsageEvent] = field(default_factory=list)
    rollups: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    keys: list[KeyRecord] = field(default_factory=list)
    subject: dict[str, Any] | None = None
    audit: list[AuditEntry] = field(default_factory=list)
    # name, version and created_at of each template version the user created
    prompt_templates: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ErasedCounts:
    events: int
    rollups: int
    responses: int
    keys: int
    subject: int
    audit: int
    prompt_templates: int = 0


class UserDataStore:
    def __init__(self, database: Database, pseudonyms: Pseudonyms) -> None:
        self._db = database
        self._pseudonyms = pseudonyms

    async def find(self, user: str) -> UserRows:
        async with self._db.engine.connect() as conn:
            keys = await self._keys(conn, user)
            key_ids = [key.id for key in keys]
            rows = UserRows(keys=keys)
            found = await conn.execute(
                select(*EVENT_COLUMNS)
                .where(self._events(user, key_ids))
                .order_by(schema.ledger.c.created_at)
            )
            rows.events = [UsageEvent.model_validate(dict(r._mapping)) for r in found]
            table = schema.rollups
            found = await conn.execute(select(table).where(table.c.user.in_(self._forms(user))))
            rows.rollups = [_plain(r._mapping) for r in found]
            table = schema.responses
            found = await conn.execute(select(table).where(_responses_of(user)))
            rows.responses = [_plain(r._mapping) for r in found]
            table = schema.subjects
            subject = (
                await conn.execute(select(table).where(table.c.kind == "user", table.c.id == user))
            ).first()
            rows.subject = None if subject is None else _plain(subject._mapping)
            rows.audit = [entry for entry, _ in await self._audit(conn, user, key_ids)]
            table = schema.prompt_templates
            found = await conn.execute(
                select(table.c.name, table.c.version, table.c.created_at)
                .where(self._template_creator(user, key_ids))
                .order_by(table.c.name, table.c.version)
            )
            rows.prompt_templates = [_plain(r._mapping) for r in found]
        return rows

    async def key_ids(self, user: str) -> list[str]:
        async with self._db.engine.connect() as conn:
            return [key.id for key in await self._keys(conn, user)]

    async def erase(self, user: str, *, actor: str, at: float) -> ErasedCounts:
        """Delete or anonymise ``user``'s rows (see the module docstring), and write
        the compliance entry, in one transaction. Roll the ledger up first: events
        deleted here must already count in the rollups."""
        async with self._db.engine.begin() as conn:
            keys = await self._keys(conn, user)
            key_ids = [key.id for key in keys]
            events = (
                await conn.execute(delete(schema.ledger).where(self._events(user, key_ids)))
            ).rowcount
            rollups = await self._anonymise_rollups(conn, user)
            responses = (
                await conn.execute(delete(schema.responses).where(_responses_of(user)))
            ).rowcount
            if key_ids:
                table = schema.keys
                await conn.execute(
                    update(table)
                    .where(table.c.id.in_(key_ids), table.c.revoked_at.is_(None))
                    .values(revoked_at=at, updated_at=at)
                )
                await conn.execute(
                    update(table).where(table.c.id.in_(key_ids)).values(user=None, updated_at=at)
                )
            table = schema.subjects
            subject = (
                await conn.execute(delete(table).where(table.c.kind == "user", table.c.id == user))
            ).rowcount
            audit = 0
            for entry, target in await self._audit(conn, user, key_ids):
                audit += 1
                await conn.execute(
                    update(schema.audit_log)
                    .where(schema.audit_log.c.id == entry.id)
                    .values(
                        actor=_erase_id(entry.actor, user),
                        target=target,
                        before=_scrub(entry.before, user),
                        after=_scrub(entry.after, user),
                    )
                )
            table = schema.prompt_templates
            templates = (
                await conn.execute(
                    update(table)
                    .where(self._template_creator(user, key_ids))
                    .values(created_by=f"user:{ERASED}")
                )
            ).rowcount
            counts = ErasedCounts(
                events, rollups, responses, len(key_ids), subject, audit, templates
            )
            await record_change(
                conn,
                at,
                actor,
                "privacy.delete",
                f"privacy:{subject_tag(user)}",
                None,
                {**counts_dict(counts), "revoked_keys": key_ids},
            )
        return counts

    async def record_export(
        self, user: str, *, actor: str, at: float, counts: dict[str, int]
    ) -> None:
        """The compliance entry of an export (no change to any data)."""
        async with self._db.engine.begin() as conn:
            await record_change(
                conn, at, actor, "privacy.export", f"privacy:{subject_tag(user)}", None, counts
            )

    # -- what is the user's --

    def _forms(self, user: str) -> list[str]:
        return self._pseudonyms.forms(user)

    def _events(self, user: str, key_ids: list[str]) -> ColumnElement[bool]:
        table = schema.ledger
        forms = self._forms(user)
        conditions = [
            table.c.user.in_(forms),
            table.c.principal.in_([JWT_PREFIX + form for form in forms]),
        ]
        if key_ids:
            conditions.append(table.c.key_id.in_(key_ids))
        return or_(*conditions)

    def _template_creator(self, user: str, key_ids: list[str]) -> ColumnElement[bool]:
        creators = [JWT_PREFIX + form for form in self._forms(user)]
        creators += [f"key:{key_id}" for key_id in key_ids]
        return schema.prompt_templates.c.created_by.in_(creators)

    async def _keys(self, conn: AsyncConnection, user: str) -> list[KeyRecord]:
        table = schema.keys
        found = await conn.execute(select(table).where(table.c.user == user))
        return [KeyRecord.model_validate(dict(r._mapping)) for r in found]

    async def _audit(
        self, conn: AsyncConnection, user: str, key_ids: list[str]
    ) -> list[tuple[AuditEntry, str]]:
        """Audit entries that name ``user`` (exactly, as a value), with the target
        each should have once erased. Narrowed in SQL by a substring match on
        the entry as text, then checked exactly here."""
        table = schema.audit_log
        pattern = "%" + _escape_like(user) + "%"
        texts = [cast(table.c[name], String) for name in ("before", "after")]
        candidates = or_(
            table.c.actor.like(pattern, escape="\\"),
            table.c.target.like(pattern, escape="\\"),
            *(text.like(pattern, escape="\\") for text in texts),
        )
        found = await conn.execute(select(table).where(candidates).order_by(table.c.id))
        entries = []
        user_target = f"user:{user}"
        key_targets = {f"key:{key_id}" for key_id in key_ids}
        for row in found:
            entry = AuditEntry.model_validate(dict(row._mapping))
            target = f"user:{ERASED}" if entry.target == user_target else entry.target
            if (
                entry.target == user_target
                or entry.target in key_targets
                or _erase_id(entry.actor, user) != entry.actor
                or _scrub(entry.before, user) != entry.before
                or _scrub(entry.after, user) != entry.after
            ):
                entries.append((entry, target))
        return entries

    async def _anonymise_rollups(self, conn: AsyncConnection, user: str) -> int:
        """Move the user's rollup rows to user ``''``, adding them to rows already there."""
        table = schema.rollups
        rows = [
            dict(r._mapping)
            for r in await conn.execute(select(table).where(table.c.user.in_(self._forms(user))))
        ]
        if not rows:
            return 0
        await conn.execute(delete(table).where(table.c.user.in_(self._forms(user))))
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        for row in rows:
            statement = insert(table).values(**{**row, "user": ""})
            added = {name: table.c[name] + statement.excluded[name] for name in MEASURES}
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["day", *DIMENSIONS],
                    set_={**added, "updated_at": statement.excluded.updated_at},
                )
            )
        return len(rows)


def _plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row as a plain dict: SQLAlchemy names some columns with a ``str``
    subclass, which JSON encoders refuse as keys."""
    return {str(key): value for key, value in row.items()}


def _responses_of(user: str) -> ColumnElement[bool]:
    table = schema.responses
    return or_(table.c.user == user, table.c.end_user == user)


def counts_dict(counts: ErasedCounts) -> dict[str, int]:
    return {
        "events": counts.events,
        "rollups": counts.rollups,
        "responses": counts.responses,
        "keys": counts.keys,
        "subject": counts.subject,
        "audit": counts.audit,
        "prompt_templates": counts.prompt_templates,
    }


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _erase_id(value: str, user: str) -> str:
    """An actor or principal with ``user`` erased: ``U``, ``jwt:U``, ``cli:U``."""
    if value == user:
        return ERASED
    kind, _, rest = value.partition(":")
    return f"{kind}:{ERASED}" if rest == user else value


def _scrub(value: Any, user: str) -> Any:
    """``value`` (an audit snapshot) with every string equal to ``user`` erased."""
    if isinstance(value, str):
        return ERASED if value == user else value
    if isinstance(value, dict):
        return {key: _scrub(item, user) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, user) for item in value]
    return value
