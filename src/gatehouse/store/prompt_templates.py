"""Prompt templates stored in the gateway (table ``prompt_templates``, migration 0008).

Rows only: who may read or write which template, and what a template may
contain, are :mod:`gatehouse.prompts.library`'s business. A version, once
inserted, is never rewritten: :meth:`PromptTemplateStore.insert` adds the
next number or reports that another writer took it first, and deleting a
version leaves a tombstone, so a number (and a name) is never given to other
content. Creations and deletions are written to the audit log in the same
transaction (without bumping the directory revision: nothing caches templates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from gatehouse.store import schema
from gatehouse.store.database import Database


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    name: str
    version: int
    template: str
    system: str | None
    # name -> {"type", "required", "default", "description"}, as the library wrote it
    variables: dict[str, Any]
    description: str
    owner_kind: str | None
    owner_id: str | None
    created_at: float
    created_by: str
    deleted_at: float | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def snapshot(self) -> dict[str, Any]:
        """What the audit log keeps: which template, whose, never its text."""
        return {
            "name": self.name,
            "version": self.version,
            "owner": None if self.owner_kind is None else f"{self.owner_kind}:{self.owner_id}",
        }


def _record(row: Any) -> StoredTemplate:
    return StoredTemplate(**row._mapping)


class PromptTemplateStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def history(self, name: str) -> list[StoredTemplate]:
        """Every version of ``name``, tombstones included, oldest first."""
        table = schema.prompt_templates
        query = select(table).where(table.c.name == name).order_by(table.c.version)
        async with self._db.engine.connect() as conn:
            return [_record(row) for row in await conn.execute(query)]

    async def get(self, name: str, version: int | None = None) -> StoredTemplate | None:
        """Version ``version`` of ``name`` (default: the latest that is not
        deleted), or ``None``; a deleted version is returned as its tombstone."""
        table = schema.prompt_templates
        query = select(table).where(table.c.name == name)
        if version is None:
            query = query.where(table.c.deleted_at.is_(None))
            query = query.order_by(table.c.version.desc()).limit(1)
        else:
            query = query.where(table.c.version == version)
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _record(row)

    async def live(self) -> list[StoredTemplate]:
        """Every version that is not deleted, by name then version."""
        table = schema.prompt_templates
        query = (
            select(table)
            .where(table.c.deleted_at.is_(None))
            .order_by(table.c.name, table.c.version)
        )
        async with self._db.engine.connect() as conn:
            return [_record(row) for row in await conn.execute(query)]

    async def insert(self, record: StoredTemplate) -> bool:
        """Add ``record``; ``False`` if its name and version exist already
        (another writer took the number: read the history again and retry)."""
        values = {
            "name": record.name,
            "version": record.version,
            "template": record.template,
            "system": record.system,
            "variables": record.variables,
            "description": record.description,
            "owner_kind": record.owner_kind,
            "owner_id": record.owner_id,
            "created_at": record.created_at,
            "created_by": record.created_by,
        }
        try:
            async with self._db.engine.begin() as conn:
                await conn.execute(insert(schema.prompt_templates).values(**values))
                await _audit(
                    conn, record.created_at, record.created_by, "create", record, after=True
                )
        except IntegrityError:
            return False
        return True

    async def delete(
        self, records: list[StoredTemplate], *, actor: str, at: float
    ) -> list[StoredTemplate]:
        """Turn ``records`` into tombstones; those that still were live."""
        table = schema.prompt_templates
        deleted = []
        async with self._db.engine.begin() as conn:
            for record in records:
                result = await conn.execute(
                    update(table)
                    .where(
                        table.c.name == record.name,
                        table.c.version == record.version,
                        table.c.deleted_at.is_(None),
                    )
                    .values(template="", system=None, variables={}, description="", deleted_at=at)
                )
                if result.rowcount:
                    deleted.append(record)
                    await _audit(conn, at, actor, "delete", record, after=False)
        return deleted


async def _audit(
    conn: Any, at: float, actor: str, action: str, record: StoredTemplate, *, after: bool
) -> None:
    snapshot = record.snapshot()
    await conn.execute(
        insert(schema.audit_log).values(
            at=at,
            actor=actor,
            action=action,
            target=f"prompt:{record.name}@{record.version}",
            before=None if after else snapshot,
            after=snapshot if after else None,
        )
    )
