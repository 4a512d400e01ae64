"""``gatehouse keys`` and ``gatehouse spend`` on the embedded database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gatehouse.cli.main import main


def run(tmp_path: Path, *argv: str) -> int:
    return main(["--data-dir", str(tmp_path), *argv])


def test_keys_create_list_rotate_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            tmp_path,
            "keys",
            "create",
            "--name",
            "app",
            "--team",
            "red",
            "--rpm",
            "5",
            "--budget",
            "2.5",
            "--period",
            "day",
        )
        == 0
    )
    key = capsys.readouterr().out.strip()
    assert key.startswith("gh-")
    key_id = key[3:19]
    assert run(tmp_path, "keys", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["id"] == key_id
    assert listed[0]["limits"]["rpm"] == 5
    assert listed[0]["budget"] == {"max_usd": 2.5, "period": "day", "hard": True}
    assert "key" not in listed[0]
    assert run(tmp_path, "keys", "rotate", key_id) == 0
    rotated = capsys.readouterr().out.strip()
    assert rotated != key
    assert rotated[3:19] == key_id
    assert run(tmp_path, "keys", "revoke", key_id) == 0
    assert run(tmp_path, "keys", "list") == 0
    assert "revoked" in capsys.readouterr().out


def test_an_expiry_without_an_offset_is_utc_and_a_bad_one_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "keys", "create", "--name", "until", "--expires", "2030-01-01") == 0
    capsys.readouterr()
    assert run(tmp_path, "keys", "list", "--json") == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["expires_at"] == "2030-01-01T00:00:00Z"
    assert run(tmp_path, "keys", "create", "--name", "x", "--expires", "tomorrow") == 2
    assert capsys.readouterr().err == (
        "gatehouse: error: --expires: 'tomorrow' is not an ISO 8601 time\n"
    )


def test_spend_reads_the_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "spend", "--by", "team", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"rows": []}


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["keys", "create", "--name", "x", "--scope", "root"], 2, "unknown scope"),
        (["keys", "create", "--name", "x", "--rpm", "0"], 2, "limits.rpm"),
        (["keys", "revoke", "0123456789abcdef"], 1, "No key with id"),
        (["spend", "--since", "yesterday"], 2, "not an ISO 8601 time"),
        (["spend", "--by", "colour"], 2, "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    try:
        result = run(tmp_path, *argv)
    except SystemExit as exc:  # argparse's own usage errors
        result = int(str(exc.code))
    assert result == code
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1


def test_spend_lists_every_token_bucket(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gatehouse.core.records import UsageEvent
    from gatehouse.store.database import Database, database_url
    from gatehouse.store.ledger import LedgerStore

    async def record() -> None:
        database = Database(database_url(None, tmp_path))
        await database.open()
        event = UsageEvent(
            id="e1",
            request_id="r1",
            created_at=1_779_926_400.0,
            principal="master",
            team="red",
            endpoint="chat",
            model="m",
            status="ok",
            http_status=200,
            prompt_tokens=40,
            completion_tokens=20,
            cached_tokens=16,
            cache_write_tokens=8,
            reasoning_tokens=12,
            cost_usd=0.5,
            latency_ms=1.0,
        )
        await LedgerStore(database).insert([event])
        await database.close()

    asyncio.run(record())
    assert run(tmp_path, "spend", "--by", "team") == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        [
            "team",
            "accepted",
            "refused",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost_usd",
        ],
        ["red", "1", "0", "40", "20", "16", "8", "12", "0.500000"],
    ]
