"""Guard policies of keys and teams set through the admin API.

:class:`GuardPolicies` is both the admin side (get, put, delete, audited) and
what the guard stage reads: every stored override, loaded in one query and
reloaded whenever the directory drops its caches, which it does when any
replica changes keys, teams or these policies (the revision poll). So a
policy set on one replica applies to the next request on it, and on every
other replica within a poll interval.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import SQLAlchemyError

from gatehouse.core.config import GuardEntityOverrides
from gatehouse.core.errors import NotFoundError, ServiceUnavailableError
from gatehouse.core.ids import Clock
from gatehouse.core.records import iso
from gatehouse.gateway.keys import Directory
from gatehouse.guard import Action
from gatehouse.store.directory import DirectoryStore
from gatehouse.store.guard_policies import GuardPolicyStore, PolicyKind, StoredGuardPolicy

Overrides = dict[str, dict[str, Action]]
# What a stored action reads as (the admin API validated it on the way in).
_ACTIONS: dict[str, Action] = {
    "allow": "allow",
    "redact": "redact",
    "mask": "mask",
    "block": "block",
}


class GuardPolicyPut(BaseModel):
    """A key's or a team's guard policy: entity actions over the default's,
    as in ``guard.keys`` / ``guard.teams``. Types left out keep the default's."""

    model_config = ConfigDict(extra="forbid")

    entities: GuardEntityOverrides


def public(policy: StoredGuardPolicy) -> dict[str, Any]:
    return {
        "kind": policy.kind,
        "id": policy.id,
        "entities": policy.entities,
        "created_at": iso(policy.created_at),
        "updated_at": iso(policy.updated_at),
    }


class GuardPolicies:
    def __init__(
        self,
        store: GuardPolicyStore,
        directory: Directory,
        keys: DirectoryStore,
        *,
        clock: Clock,
    ) -> None:
        self._store = store
        self._directory = directory
        self._keys = keys
        self._clock = clock
        self._generation = -1
        self._loaded: tuple[Overrides, Overrides] = ({}, {})
        self._lock = asyncio.Lock()

    # -- what the guard stage reads --

    @property
    def generation(self) -> int:
        """Moves whenever a stored policy may have changed."""
        return self._directory.generation

    async def overrides(self) -> tuple[Overrides, Overrides]:
        """``(teams, keys)``: each stored policy's entity actions, as of now."""
        if self._generation == self._directory.generation:
            return self._loaded
        async with self._lock:
            generation = self._directory.generation
            if self._generation != generation:
                teams: Overrides = {}
                keys: Overrides = {}
                try:
                    stored = await self._store.all()
                except (SQLAlchemyError, OSError) as exc:
                    # Guessing the policy could let through what a stored one blocks.
                    raise ServiceUnavailableError(
                        f"The guard policies cannot be read: {type(exc).__name__}."
                    ) from exc
                for policy in stored:
                    actions = {name: _ACTIONS[action] for name, action in policy.entities.items()}
                    (teams if policy.kind == "team" else keys)[policy.id] = actions
                self._loaded = (teams, keys)
                self._generation = generation
        return self._loaded

    # -- the admin API --

    async def get(self, kind: PolicyKind, subject_id: str) -> StoredGuardPolicy:
        policy = await self._store.get(kind, subject_id)
        if policy is None:
            raise NotFoundError(f"No guard policy for {kind} '{subject_id}'.", param="id")
        return policy

    async def put(
        self, kind: PolicyKind, subject_id: str, body: GuardPolicyPut, *, actor: str
    ) -> tuple[StoredGuardPolicy, bool]:
        """Set ``kind``'s policy; returns it and whether it is new. A key must exist."""
        if kind == "key" and await self._keys.key(subject_id) is None:
            raise NotFoundError(f"No key with id '{subject_id}'.", param="id")
        before = await self._store.get(kind, subject_id)
        now = self._clock()
        policy = StoredGuardPolicy(
            kind=kind,
            id=subject_id,
            entities=dict(body.entities.actions()),
            created_at=before.created_at if before is not None else now,
            updated_at=now,
        )
        await self._store.put(policy, before=before, actor=actor)
        await self._directory.refresh()
        return policy, before is None

    async def delete(self, kind: PolicyKind, subject_id: str, *, actor: str) -> None:
        before = await self.get(kind, subject_id)
        await self._store.delete(before, actor=actor, at=self._clock())
        await self._directory.refresh()
