"""``serve --workers N`` without Redis starts its shared counters empty, as one
process's in-process counters start: budgets are then seeded from the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.core.config import Settings
from gatehouse.observability import multiprocess
from gatehouse.server import runner
from gatehouse.server.app import SETTINGS_ENV


@pytest.mark.parametrize("redis", [False, True])
def test_workers_start_from_empty_shared_counters(
    redis: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    earlier = [data / name for name in ("counters.db", "counters.db-wal", "counters.db-shm")]
    for file in earlier:
        file.write_bytes(b"an earlier run's counters")
    monkeypatch.setenv(SETTINGS_ENV, "")
    monkeypatch.setenv(multiprocess.ENV, "")
    started: list[str] = []
    monkeypatch.setattr(runner, "serve_workers", lambda app, **options: started.append(app))
    store = {"redis_url": "redis://127.0.0.1:1/0"} if redis else {}
    settings = Settings.model_validate(
        {
            "data_dir": data,
            "local": {"chat": {"enabled": False}},
            "server": {"workers": 2},
            "store": store,
        }
    )
    runner.serve(settings)
    assert len(started) == 1
    # With Redis the file is not the workers' store: it is left as it was.
    assert [file.exists() for file in earlier] == [redis] * 3
