"""Guard policies set through the admin API: a key's or a team's entity actions.

Each write is audited and bumps the revision that replicas poll (as for keys
and teams, :func:`gatehouse.store.directory.record_change`), so a policy set on
one replica applies on every replica within a poll interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, insert, select, update

from gatehouse.store import schema
from gatehouse.store.database import Database
from gatehouse.store.directory import record_change

PolicyKind = Literal["key", "team"]


@dataclass(frozen=True, slots=True)
class StoredGuardPolicy:
    kind: PolicyKind
    id: str
    entities: dict[str, str]  # entity type -> action, as GuardOverrideConfig.actions() gives
    created_at: float
    updated_at: float

    def snapshot(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "entities": dict(self.entities)}


class GuardPolicyStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def all(self) -> list[StoredGuardPolicy]:
        table = schema.guard_policies
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(select(table))).all()
        return [StoredGuardPolicy(**row._mapping) for row in rows]

    async def get(self, kind: PolicyKind, subject_id: str) -> StoredGuardPolicy | None:
        table = schema.guard_policies
        query = select(table).where(table.c.kind == kind, table.c.id == subject_id)
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else StoredGuardPolicy(**row._mapping)

    async def put(
        self, policy: StoredGuardPolicy, *, before: StoredGuardPolicy | None, actor: str
    ) -> None:
        table = schema.guard_policies
        async with self._db.engine.begin() as conn:
            if before is None:
                await conn.execute(
                    insert(table).values(
                        kind=policy.kind,
                        id=policy.id,
                        entities=policy.entities,
                        created_at=policy.created_at,
                        updated_at=policy.updated_at,
                    )
                )
            else:
                await conn.execute(
                    update(table)
                    .where(table.c.kind == policy.kind, table.c.id == policy.id)
                    .values(entities=policy.entities, updated_at=policy.updated_at)
                )
            await record_change(
                conn,
                policy.updated_at,
                actor,
                "create" if before is None else "update",
                f"guard:{policy.kind}:{policy.id}",
                None if before is None else before.snapshot(),
                policy.snapshot(),
            )

    async def delete(self, before: StoredGuardPolicy, *, actor: str, at: float) -> None:
        table = schema.guard_policies
        async with self._db.engine.begin() as conn:
            await conn.execute(
                delete(table).where(table.c.kind == before.kind, table.c.id == before.id)
            )
            await record_change(
                conn,
                at,
                actor,
                "delete",
                f"guard:{before.kind}:{before.id}",
                before.snapshot(),
                None,
            )
