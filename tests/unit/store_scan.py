"""Every row of every gatehouse table, as text: what a privacy test searches."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from gatehouse.store import schema
from gatehouse.store.database import Database, database_url


async def table_rows(database: Database) -> list[str]:
    """Each row of each table of the schema, as the text of its values."""
    async with database.engine.connect() as conn:
        return [
            str(tuple(row))
            for table in schema.metadata.sorted_tables
            for row in await conn.execute(select(table))
        ]


async def rows_at(url: str | None, data_dir: Path) -> list[str]:
    """:func:`table_rows` of the database at ``url`` (None: the SQLite file of ``data_dir``)."""
    database = Database(database_url(url, data_dir))
    await database.open()
    try:
        return await table_rows(database)
    finally:
        await database.close()
