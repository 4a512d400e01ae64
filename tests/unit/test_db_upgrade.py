"""``gatehouse db upgrade`` and the schema check at start-up, on the embedded SQLite database."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from gatehouse.cli.main import main
from gatehouse.core.errors import SchemaError
from gatehouse.store.database import MIGRATIONS, Database, database_url

NEWEST = ScriptDirectory(str(MIGRATIONS)).get_current_head()


def run(data_dir: Path, *argv: str) -> int:
    return main(["--data-dir", str(data_dir), *argv])


def revision(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "gatehouse.db") as db:
        return [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]


def test_upgrade_migrates_an_empty_database_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "db", "upgrade") == 0
    assert capsys.readouterr().out == f"database upgraded from empty to {NEWEST}\n"
    assert revision(tmp_path) == [NEWEST]
    assert run(tmp_path, "db", "upgrade") == 0
    assert capsys.readouterr().out == (
        f"database already at {NEWEST}, the newest this gatehouse knows\n"
    )


def test_a_schema_newer_than_this_version_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "db", "upgrade") == 0
    with sqlite3.connect(tmp_path / "gatehouse.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    capsys.readouterr()
    for command in (["db", "upgrade"], ["serve", "--port", "0"]):
        assert run(tmp_path, *command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("gatehouse: error: the database schema is at revision 9999, newer")
        assert f"(its newest is {NEWEST})" in err
    assert revision(tmp_path) == ["9999"]  # left as it was


def test_without_auto_upgrade_an_old_schema_is_refused_until_db_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_STORE__AUTO_UPGRADE", "false")
    database = Database(database_url(None, tmp_path))

    async def open_without_upgrading() -> None:
        try:
            await database.open(upgrade=False)
        finally:
            await database.close()

    with pytest.raises(SchemaError, match="run `gatehouse db upgrade`"):
        asyncio.run(open_without_upgrading())
    for command in (["serve", "--port", "0"], ["keys", "list"], ["spend"]):
        assert run(tmp_path, *command) == 1
        assert "is at revision none (empty) and this gatehouse needs" in capsys.readouterr().err
    assert run(tmp_path, "db", "upgrade") == 0  # the explicit step migrates regardless
    asyncio.run(open_without_upgrading())
    assert run(tmp_path, "keys", "list") == 0
    assert revision(tmp_path) == [NEWEST]
