"""``gatehouse db upgrade`` run by several processes at once, as replicas starting
together do: each exits 0, exactly one migrates, and the schema is at the newest
revision once. On a real PostgreSQL (advisory lock) and on a SQLite file (flock)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text

from gatehouse.store.database import MIGRATIONS, Database, database_url

NEWEST = ScriptDirectory(str(MIGRATIONS)).get_current_head()
PROCESSES = 4


def upgrade_at_once(data_dir: Path, env: dict[str, str]) -> list[str]:
    """Start ``PROCESSES`` ``gatehouse db upgrade`` together; the line each printed."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "gatehouse", "--data-dir", str(data_dir), "db", "upgrade"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
        )
        for _ in range(PROCESSES)
    ]
    lines = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        lines.append(out.decode().strip())
    return lines


async def versions(url: str) -> list[str]:
    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return [row[0] for row in rows]
    finally:
        await database.close()


def check(lines: list[str]) -> None:
    assert lines.count(f"database upgraded from empty to {NEWEST}") == 1, lines
    already = f"database already at {NEWEST}, the newest this gatehouse knows"
    assert lines.count(already) == PROCESSES - 1, lines


def test_concurrent_upgrades_on_postgres_migrate_once(postgres_url: str, tmp_path: Path) -> None:
    lines = upgrade_at_once(tmp_path, {"GATEHOUSE_STORE__DATABASE_URL": postgres_url})
    check(lines)
    assert asyncio.run(versions(database_url(postgres_url, tmp_path))) == [NEWEST]


def test_concurrent_upgrades_on_sqlite_migrate_once(tmp_path: Path) -> None:
    lines = upgrade_at_once(tmp_path, {})
    check(lines)
    assert asyncio.run(versions(database_url(None, tmp_path))) == [NEWEST]


def test_a_newer_postgres_schema_stops_serve_with_one_line(
    postgres_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "GATEHOUSE_STORE__DATABASE_URL": postgres_url}
    gatehouse = [sys.executable, "-m", "gatehouse", "--data-dir", str(tmp_path)]
    subprocess.run([*gatehouse, "db", "upgrade"], env=env, check=True, capture_output=True)

    async def from_the_future() -> None:
        database = Database(database_url(postgres_url, tmp_path))
        try:
            async with database.engine.begin() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
        finally:
            await database.close()

    asyncio.run(from_the_future())
    served = subprocess.run(
        [*gatehouse, "serve", "--port", "0"], env=env, capture_output=True, timeout=60
    )
    assert served.returncode == 1
    # Alembic's own log lines may come first; the error is the last line, whole.
    *logged, last = served.stderr.decode().splitlines()
    assert last.startswith(
        "gatehouse: error: the database schema is at revision ffff, newer than this gatehouse knows"
    ), served.stderr
    assert not any("listening" in line for line in logged)


def test_an_unreachable_database_stops_serve_with_one_line(tmp_path: Path) -> None:
    # Port 1 on loopback refuses connections; the password must not be printed.
    url = "postgresql+asyncpg://gatehouse:hunter2@127.0.0.1:1/gatehouse"
    served = subprocess.run(
        [sys.executable, "-m", "gatehouse", "--data-dir", str(tmp_path), "serve", "--port", "0"],
        env={**os.environ, "GATEHOUSE_STORE__DATABASE_URL": url},
        capture_output=True,
        timeout=120,
    )
    assert served.returncode == 1
    stderr = served.stderr.decode()
    assert "Traceback" not in stderr
    assert "hunter2" not in stderr
    assert stderr.splitlines()[-1].startswith(
        "gatehouse: error: cannot open the database postgresql+asyncpg://gatehouse:***@127.0.0.1:1/"
    ), stderr
