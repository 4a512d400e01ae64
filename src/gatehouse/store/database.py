"""The SQL database: an async engine on SQLite (default) or PostgreSQL, migrated on open.

Migrations are Alembic's (``store/migrations``). Several processes may start,
or run ``gatehouse db upgrade``, against one database at once; one migrates
while the others wait, then find nothing left to do:

- PostgreSQL: a transaction-scoped advisory lock (``pg_advisory_xact_lock``)
  taken before the schema's revision is read; the whole upgrade runs in that
  transaction (PostgreSQL's DDL is transactional), so the lock is released at
  its commit or rollback, even if the process dies.
- SQLite: an exclusive ``flock`` on ``<database file>.migrate.lock``.
  SQLite's own locking is not enough: Python's sqlite3 runs DDL outside a
  transaction, so two processes could interleave the statements of one
  migration. The kernel releases the lock when the process exits.

A database whose revision this gatehouse does not know (a newer gatehouse
migrated it) is refused with :class:`SchemaError`, as is, when upgrading is
off (``store.auto_upgrade: false``), an older one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gatehouse.core.config import Settings
from gatehouse.core.errors import ConfigError, SchemaError, ServiceUnavailableError

log = logging.getLogger("gatehouse.store")

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x6761_7465  # any constant: serialises replicas migrating at once


@dataclass(frozen=True, slots=True)
class Migration:
    """What opening a database found and left: its revision before and after
    (``None``: an empty database)."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


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


async def prepare_schema(settings: Settings, *, upgrade: bool) -> Migration:
    """Check (and with ``upgrade``, migrate) the configured database's schema, then
    let it go: what ``gatehouse db upgrade`` and ``serve`` do before serving."""
    database = Database.configured(settings)
    try:
        return await database.open(upgrade=upgrade)
    finally:
        await database.close()


class Database:
    """Owns the engine. ``open()`` migrates the schema to the latest revision."""

    @classmethod
    def configured(cls, settings: Settings) -> Database:
        """The database ``store.database_url`` names, else the SQLite file in the
        data directory. Open it with ``upgrade=settings.store.auto_upgrade``."""
        url = settings.store.database_url
        return cls(database_url(url.get_secret_value() if url else None, settings.data_dir))

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

    async def open(self, *, upgrade: bool = True) -> Migration:
        """Check the schema and, with ``upgrade``, migrate it to the newest revision.

        Raises :class:`SchemaError` on a revision this gatehouse does not know,
        or, without ``upgrade``, on one older than its newest."""
        async with self._migration_lock():
            for attempt in range(10):
                try:
                    async with self.engine.begin() as conn:
                        if not self.is_sqlite:
                            await conn.execute(
                                text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK}
                            )
                        migration: Migration = await conn.run_sync(_migrate, upgrade)
                    if migration.changed:
                        log.info(
                            "database migrated from %s to %s", migration.before, migration.after
                        )
                    return migration
                except (DBAPIError, OSError) as exc:
                    if attempt == 9:
                        # One line for the operator, not a driver traceback.
                        where = make_url(self.url).render_as_string(hide_password=True)
                        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                        raise ServiceUnavailableError(
                            f"cannot open the database {where}: {reason}"
                        ) from None
                    log.info("database busy or unreachable while migrating; retrying")
                    await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[None]:
        """On a SQLite file, the lock that orders processes migrating it (PostgreSQL's
        is taken inside the migration's transaction)."""
        if self.sqlite_file is None:
            yield
            return
        self.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        lock = self.sqlite_file.with_name(self.sqlite_file.name + ".migrate.lock").open("a")
        try:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            yield
        finally:
            lock.close()  # closing the file releases the lock

    async def ping(self) -> str:
        """``SELECT 1`` on a pooled connection; returns the dialect's name
        (never the URL, which may hold a password)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return self.engine.dialect.name

    async def close(self) -> None:
        await self.engine.dispose()


def _migrate(connection: Connection, upgrade: bool) -> Migration:
    """Under the migration lock: read the revision, refuse an unknown one, upgrade."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    known = {revision.revision for revision in script.walk_revisions()}
    current = MigrationContext.configure(connection).get_current_heads()
    unknown = sorted(set(current) - known)
    if unknown:
        raise SchemaError(
            f"the database schema is at revision {unknown[0]}, newer than this gatehouse "
            f"knows (its newest is {head}): run the gatehouse version that migrated it, "
            "or restore the backup taken before that upgrade"
        )
    before = current[0] if current else None
    if before == head:
        return Migration(before, head)
    if not upgrade:
        raise SchemaError(
            f"the database schema is at revision {before or 'none (empty)'} and this "
            f"gatehouse needs {head}: run `gatehouse db upgrade` (store.auto_upgrade is off)"
        )
    command.upgrade(config, "head")
    return Migration(before, head)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
