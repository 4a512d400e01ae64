"""The SQL database: an async engine on SQLite (default) or PostgreSQL, migrated on open."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gatehouse.core.errors import ConfigError

log = logging.getLogger("gatehouse.store")

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x6761_7465  # any constant: serialises replicas migrating at once


def database_url(url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy async URL: ``None`` is the SQLite file in the data directory.

    ``postgresql://`` and ``postgres://`` URLs get the asyncpg driver; a plain
    ``sqlite:///path`` gets aiosqlite.
    """
    if url is None:
        return f"sqlite+aiosqlite:///{data_dir / 'gatehouse.db'}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError(
        "store.database_url: must be a postgresql:// or sqlite:/// URL "
        f"(got scheme '{url.split(':', 1)[0]}')"
    )


class Database:
    """Owns the engine. ``open()`` migrates the schema to the latest revision."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # The SQLite file itself, which the outbox can ship into without Python
        # touching a row (see ``Outbox.ship_to_sqlite``); None for PostgreSQL
        # or an in-memory database.
        self.sqlite_file: Path | None = None
        if self.is_sqlite:
            name = make_url(url).database
            if name and name != ":memory:" and not name.startswith("file:"):
                self.sqlite_file = Path(name)
        options: dict[str, Any] = {}
        if not self.is_sqlite:
            # Fail fast while PostgreSQL is down instead of queueing every
            # caller behind a dead pool; the outbox keeps the events meanwhile.
            options = {
                "pool_size": 5,
                "max_overflow": 5,
                "pool_timeout": 5,
                "pool_pre_ping": True,
                "connect_args": {"timeout": 5, "command_timeout": 10},
            }
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    async def open(self) -> None:
        # Several processes may start against one new database at once; on
        # PostgreSQL an advisory lock orders them, on SQLite a retry does.
        for attempt in range(10):
            try:
                async with self.engine.begin() as conn:
                    if not self.is_sqlite:
                        await conn.execute(
                            text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK}
                        )
                    await conn.run_sync(_upgrade)
                return
            except DBAPIError:
                if attempt == 9:
                    raise
                log.info("database busy while migrating; retrying")
                await asyncio.sleep(0.2 * (attempt + 1))

    async def ping(self) -> str:
        """``SELECT 1`` on a pooled connection; returns the dialect's name
        (never the URL, which may hold a password)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return self.engine.dialect.name

    async def close(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
