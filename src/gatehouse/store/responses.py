"""Stored responses of the Responses API, each owned by one caller.

:class:`ResponseStore` is the contract: put, get and delete, every read
scoped to an ``owner`` (a team, or a key without one), so another owner's
response is indistinguishable from a missing one. :class:`SQLResponseStore`
keeps them in the configured SQL database (SQLite or PostgreSQL, table
``responses``, migration 0005); :class:`MemoryResponseStore` in the process,
for a gateway built without a database.

A database that cannot be reached is a 503 (``service_unavailable``), never
a silent loss: a response that was asked to be stored and could not be is
reported as such. The store holds the response and its input as JSON documents: their shape is
the Responses API's (``gatehouse.faces.responses_items``), which the route
validates on the way in and out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from gatehouse.core.errors import ServiceUnavailableError
from gatehouse.store import schema
from gatehouse.store.database import Database


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    owner: str
    created_at: float
    model: str
    status: str
    previous_response_id: str | None
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    # Whose data it is (per-user export and deletion): the creating key's
    # user, and the end user the request named in ``user``.
    user: str | None = None
    end_user: str | None = None


class ResponseStore(Protocol):
    async def put(self, record: StoredResponse) -> None:
        """Store ``record`` (a new id: responses are never rewritten)."""
        ...

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        """The response with this id if ``owner`` owns it, else ``None``."""
        ...

    async def delete(self, response_id: str, owner: str) -> bool:
        """Delete the response if ``owner`` owns it; whether there was one to delete."""
        ...


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        raise ServiceUnavailableError(
            f"The response store is unavailable: {type(exc).__name__}."
        ) from exc


class SQLResponseStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def put(self, record: StoredResponse) -> None:
        values = {
            "id": record.id,
            "owner": record.owner,
            "created_at": record.created_at,
            "model": record.model,
            "status": record.status,
            "previous_response_id": record.previous_response_id,
            "response": record.response,
            "input_items": record.input_items,
            "user": record.user,
            "end_user": record.end_user,
        }
        with _reachable():
            async with self._db.engine.begin() as conn:
                await conn.execute(insert(schema.responses).values(**values))

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        table = schema.responses
        query = select(table).where(table.c.id == response_id, table.c.owner == owner)
        with _reachable():
            async with self._db.engine.connect() as conn:
                row = (await conn.execute(query)).first()
        return None if row is None else StoredResponse(**row._mapping)

    async def delete(self, response_id: str, owner: str) -> bool:
        table = schema.responses
        query = delete(table).where(table.c.id == response_id, table.c.owner == owner)
        with _reachable():
            async with self._db.engine.begin() as conn:
                result = await conn.execute(query)
        return bool(result.rowcount)


class MemoryResponseStore:
    def __init__(self) -> None:
        self._records: dict[str, StoredResponse] = {}

    async def put(self, record: StoredResponse) -> None:
        self._records[record.id] = record

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        record = self._records.get(response_id)
        return record if record is not None and record.owner == owner else None

    async def delete(self, response_id: str, owner: str) -> bool:
        if await self.get(response_id, owner) is None:
            return False
        del self._records[response_id]
        return True
