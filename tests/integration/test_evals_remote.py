"""Evaluations against a gatehouse server over HTTP (``--url``, ``--api-key``): every call
runs as the key, so it is metered, scoped and budgeted like the key's own calls.

The model is a fake upstream that echoes the prompt (``echo: <prompt>``), so
what a capability check sees is known: of the math suite only "144 divided by
12" ends with its right answer.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatehouse.evals.results import read_run

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, OUTPUT_PRICE, admin, create_key, write_config

QA = Path(__file__).resolve().parents[1] / "fixtures" / "evals" / "qa.jsonl"


@pytest.fixture(scope="module")
def governed(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("eval-governed")
    config = write_config(root / "gatehouse.yaml", upstream)
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield server
    stop_server(server)


def remote_eval(
    server: RunningServer, key: str | None, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    credentials = ["--api-key", key] if key is not None else []
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", "eval", *args, "--url", server.base_url, *credentials],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_capabilities_over_http_run_as_the_key_and_are_metered(
    governed: RunningServer, tmp_path: Path
) -> None:
    key = create_key(governed, team="eval-team", models=["up"])
    done = remote_eval(
        governed,
        key,
        "capabilities",
        "--model",
        "up",
        "--suite",
        "math",
        "--repeat",
        "2",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    # no --out: the default prefix under the working directory
    written = list((tmp_path / "eval-runs").glob("capabilities-*.json"))
    assert len(written) == 1
    run = read_run(written[0])
    assert {i.id: i.scores["pass_rate"].value for i in run.items} == {
        "math-1": 0.0,
        "math-2": 1.0,
        "math-3": 0.0,
        "math-4": 0.0,
    }
    assert all(i.scores["consistency"].value == 1.0 for i in run.items)
    deadline = time.monotonic() + 10
    team: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = admin(governed, "GET", "/admin/spend?group_by=team").json()["rows"]
        team = [r for r in rows if r["group"] == "eval-team"]
        if team and team[0]["requests"] == 8:
            break
        time.sleep(0.1)
    assert team
    assert team[0]["requests"] == 8


def test_a_spent_budget_stops_the_run_in_one_line(governed: RunningServer, tmp_path: Path) -> None:
    # less than one echoed prompt costs (and than the 48 tokens each call may reserve)
    key = create_key(governed, budget={"max_usd": 12 * OUTPUT_PRICE})
    done = remote_eval(
        governed, key, "capabilities", "--model", "up", "--suite", "math", cwd=tmp_path
    )
    assert done.returncode == 1
    # progress lines aside, the failure is one line
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("eval: ")]
    assert len(lines) == 1
    assert lines[0].startswith("gatehouse: error: ")
    assert "budget" in lines[0].lower()
    assert not (tmp_path / "eval-runs").exists()


def test_a_key_without_rag_read_cannot_evaluate_answers(
    governed: RunningServer, tmp_path: Path
) -> None:
    chat_only = create_key(governed, scopes=["chat"])
    done = remote_eval(
        governed, chat_only, "answers", "-c", "notices", "--dataset", str(QA), cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stderr.strip() == ("gatehouse: error: This credential lacks the 'rag:read' scope.")


def test_no_key_is_refused_in_one_line(governed: RunningServer, tmp_path: Path) -> None:
    done = remote_eval(governed, None, "capabilities", "--model", "up", cwd=tmp_path)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
