"""The two SQL backends a store conformance suite runs on, as mixins.

``class TestSQLite(OnSQLite, MyConformance)`` gives the suite's tests a
migrated ``database`` (a SQLite file, or a fresh database on the shared
PostgreSQL server) and a ``replica``: a second, unopened handle on the same
database, as another gatehouse process would hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gatehouse.store.database import Database, database_url


async def _opened(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    await database.open()
    yield database
    await database.close()


async def _second(url: str) -> AsyncIterator[Database]:
    other = Database(url)
    yield other
    await other.close()


class OnSQLite:
    @pytest.fixture
    async def database(self, tmp_path: Path) -> AsyncIterator[Database]:
        async for database in _opened(database_url(None, tmp_path)):
            yield database

    @pytest.fixture
    async def replica(self, tmp_path: Path, database: Database) -> AsyncIterator[Database]:
        async for other in _second(database_url(None, tmp_path)):
            yield other


class OnPostgres:
    @pytest.fixture
    async def database(self, postgres_url: str) -> AsyncIterator[Database]:
        async for database in _opened(database_url(postgres_url, Path("."))):
            yield database

    @pytest.fixture
    async def replica(self, postgres_url: str, database: Database) -> AsyncIterator[Database]:
        async for other in _second(database_url(postgres_url, Path("."))):
            yield other
