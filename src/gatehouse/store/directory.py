"""Keys, teams and users in SQL, with the audit log and the change counter.

Every change writes its audit entry and bumps the ``revision`` in the same
transaction, so replicas that see the new revision see the change, and no
change goes unaudited.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gatehouse.core.records import AuditEntry, KeyRecord, SubjectKind, SubjectRecord
from gatehouse.store import schema
from gatehouse.store.database import Database

REVISION = "revision"


class DirectoryStore:
    """The SQL side of keys, subjects and audit; callers hold no connection."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # -- reads --

    async def revision(self) -> int:
        async with self._db.engine.connect() as conn:
            value = await conn.scalar(
                select(schema.state.c.value).where(schema.state.c.name == REVISION)
            )
        return int(value or 0)

    async def key(self, key_id: str) -> KeyRecord | None:
        async with self._db.engine.connect() as conn:
            row = (
                await conn.execute(select(schema.keys).where(schema.keys.c.id == key_id))
            ).first()
        return None if row is None else KeyRecord.model_validate(dict(row._mapping))

    async def keys(
        self, *, team: str | None = None, user: str | None = None, include_revoked: bool = True
    ) -> list[KeyRecord]:
        query = select(schema.keys).order_by(schema.keys.c.created_at)
        if team is not None:
            query = query.where(schema.keys.c.team == team)
        if user is not None:
            query = query.where(schema.keys.c.user == user)
        if not include_revoked:
            query = query.where(schema.keys.c.revoked_at.is_(None))
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [KeyRecord.model_validate(dict(row._mapping)) for row in rows]

    async def subject(self, kind: SubjectKind, subject_id: str) -> SubjectRecord | None:
        table = schema.subjects
        async with self._db.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(table).where(table.c.kind == kind, table.c.id == subject_id)
                )
            ).first()
        return None if row is None else SubjectRecord.model_validate(dict(row._mapping))

    async def subjects(self, kind: SubjectKind) -> list[SubjectRecord]:
        table = schema.subjects
        async with self._db.engine.connect() as conn:
            rows = (
                await conn.execute(select(table).where(table.c.kind == kind).order_by(table.c.id))
            ).all()
        return [SubjectRecord.model_validate(dict(row._mapping)) for row in rows]

    async def audit(self, *, since: float = 0.0, limit: int = 100) -> list[AuditEntry]:
        table = schema.audit_log
        query = select(table).where(table.c.at >= since).order_by(table.c.id.desc()).limit(limit)
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [AuditEntry.model_validate(dict(row._mapping)) for row in rows]

    # -- writes: each one audited and revision-bumped in its own transaction --

    async def put_key(
        self, record: KeyRecord, *, actor: str, action: str, before: KeyRecord | None
    ) -> None:
        values = record.model_dump(mode="json")
        async with self._db.engine.begin() as conn:
            if before is None:
                await conn.execute(insert(schema.keys).values(**values))
            else:
                await conn.execute(
                    update(schema.keys).where(schema.keys.c.id == record.id).values(**values)
                )
            await _audit(conn, record.updated_at, actor, action, f"key:{record.id}", before, record)

    async def put_subject(
        self, record: SubjectRecord, *, actor: str, action: str, before: SubjectRecord | None
    ) -> None:
        table = schema.subjects
        values = record.model_dump(mode="json")
        async with self._db.engine.begin() as conn:
            if before is None:
                await conn.execute(insert(table).values(**values))
            else:
                await conn.execute(
                    update(table)
                    .where(table.c.kind == record.kind, table.c.id == record.id)
                    .values(**values)
                )
            target = f"{record.kind}:{record.id}"
            await _audit(conn, record.updated_at, actor, action, target, before, record)

    async def delete_subject(self, before: SubjectRecord, *, actor: str, at: float) -> None:
        table = schema.subjects
        async with self._db.engine.begin() as conn:
            await conn.execute(
                delete(table).where(table.c.kind == before.kind, table.c.id == before.id)
            )
            target = f"{before.kind}:{before.id}"
            await _audit(conn, at, actor, "delete", target, before, None)


def _safe(record: KeyRecord | SubjectRecord | None) -> dict[str, Any] | None:
    """An audit snapshot: never the salt or digest of a key."""
    if record is None:
        return None
    return record.model_dump(mode="json", exclude={"salt", "digest"})


async def _audit(
    conn: AsyncConnection,
    at: float,
    actor: str,
    action: str,
    target: str,
    before: KeyRecord | SubjectRecord | None,
    after: KeyRecord | SubjectRecord | None,
) -> None:
    await record_change(conn, at, actor, action, target, _safe(before), _safe(after))


async def record_change(
    conn: AsyncConnection,
    at: float,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Audit a change and bump the revision replicas poll, in ``conn``'s
    transaction: every change to what replicas cache goes through here."""
    await conn.execute(
        insert(schema.audit_log).values(
            at=at, actor=actor, action=action, target=target, before=before, after=after
        )
    )
    bumped = await conn.execute(
        update(schema.state)
        .where(schema.state.c.name == REVISION)
        .values(value=schema.state.c.value + 1)
    )
    if bumped.rowcount == 0:
        await conn.execute(insert(schema.state).values(name=REVISION, value=1))
