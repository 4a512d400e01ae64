"""``gatehouse purge``: one retention round on the embedded database, by hand."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from gatehouse.cli.main import main
from gatehouse.core.records import UsageEvent
from gatehouse.store.database import Database, database_url
from gatehouse.store.ledger import LedgerStore


def event(n: int, created_at: float) -> UsageEvent:
    return UsageEvent(
        id=f"e{n}",
        request_id=f"r{n}",
        created_at=created_at,
        principal="key:a",
        key_id="a",
        team="red",
        endpoint="chat",
        model="m",
        status="ok",
        http_status=200,
        prompt_tokens=3,
        completion_tokens=4,
        cost_usd=0.25,
        latency_ms=5.0,
    )


async def _insert(data_dir: Path, events: list[UsageEvent]) -> None:
    database = Database(database_url(None, data_dir))
    try:
        await database.open()
        await LedgerStore(database).insert(events)
    finally:
        await database.close()


def test_purge_rolls_up_then_deletes_old_events_and_spend_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    old = [event(n, now - 90 * 86400 + n) for n in range(5)]  # past the default 30 days
    recent = [event(n, now - 60 + n) for n in range(5, 8)]
    asyncio.run(_insert(tmp_path, old + recent))
    argv = ["--data-dir", str(tmp_path)]
    assert main([*argv, "spend", "--by", "team", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["rows"][0]["requests"] == 8

    assert main([*argv, "purge", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "rolled_up": 8,
        "events_deleted": 5,
        "rollups_deleted": 0,
        "audit_deleted": 0,
        "responses_deleted": 0,
    }
    assert main([*argv, "spend", "--by", "team", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == before
    assert main([*argv, "purge"]) == 0  # a second round finds nothing to do
    assert "rolled up 0 events; deleted 0 events" in capsys.readouterr().out
