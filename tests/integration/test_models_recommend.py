"""``gatehouse models recommend`` against the ledger of a real server, and the
latency read on both SQL backends.

The end-to-end test serves three chat groups through a fake upstream (one of
them answers 0.4 s late), sends traffic through the server, then runs the CLI
on the server's config and data directory: latency comes from what the server
recorded, prices and context windows from the catalog and the config, scores
from an eval run file. Measured latencies are only compared with the bounds
the fake upstream guarantees (never with a wall-clock budget).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gatehouse.core.records import UsageEvent
from gatehouse.evals.results import EvalRun, ItemResult, Score, write_run
from gatehouse.store.database import Database
from gatehouse.store.latency import chat_latencies
from gatehouse.store.ledger import LedgerStore

from .conftest import start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream
from .sql_backends import OnPostgres, OnSQLite

SLOW_DELAY_S = 0.4
CALLS = 4


def _config(root: Path, upstream: FakeUpstream) -> Path:
    config = root / "gatehouse.yaml"

    def group(name: str, model: str, extra: str = "") -> str:
        return (
            f"  - name: {name}\n"
            f"    deployments:\n"
            f"      - provider: openai_compat\n"
            f"        model: {model}\n"
            f"        base_url: {upstream.base_url}/v1\n"
            f"        api_key_env: FAKE_KEY\n{extra}"
        )

    config.write_text(
        "local:\n  chat:\n    enabled: false\n"
        "models:\n"
        + group("quick", "gpt-4.1-nano")
        + group("slow", "gpt-4o-mini")
        + group("own", "ft-support-7", "        context_window: 32000\n")
    )
    return config


def _cli(config: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    prefix = [sys.executable, "-m", "gatehouse", "--config", str(config), "--data-dir", str(data)]
    return subprocess.run(
        [*prefix, "models", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _recorded(config: Path, data: Path, evals: Path) -> dict[str, object]:
    """The recommendation once every call has reached the ledger (the server
    ships its outbox in the background)."""
    deadline = time.monotonic() + 30
    while True:
        result = _cli(config, data, "recommend", "--task", "chat", "--evals", str(evals), "--json")
        assert result.returncode == 0, result.stderr
        body: dict[str, object] = json.loads(result.stdout)
        counts = {
            item["model"]: (item["latency"] or {}).get("count", 0)
            for item in body["ranked"]  # type: ignore[attr-defined]
        }
        if counts.get("quick") == CALLS + 1 and counts.get("slow") == CALLS:
            return body
        assert time.monotonic() < deadline, f"calls never reached the ledger: {counts}"
        time.sleep(0.3)


def test_recommend_reads_the_servers_ledger(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.reset()
    upstream.by_model["gpt-4o-mini"] = Behaviour("delay", delay=SLOW_DELAY_S)
    config = _config(tmp_path, upstream)
    data = tmp_path / "data"
    evals = tmp_path / "eval-runs"
    write_run(
        EvalRun(
            kind="capabilities",
            name="slow-run",
            created_at="2026-01-01T00:00:00+00:00",
            settings={"model": "slow"},
            metrics=["pass_rate"],
            items=[
                ItemResult(
                    id="r1", group="reasoning", input="q", scores={"pass_rate": Score.of(1.0)}
                )
            ],
        ).summarise(),
        evals / "slow.json",
    )
    server = start_server(data, env={"FAKE_KEY": "sk-fake"}, config=config)
    try:
        client = server.openai()
        for model in ("quick", "slow"):
            for _ in range(CALLS):
                client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=5
                )
        stream = client.chat.completions.create(
            model="quick", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert list(stream)
        body = _recorded(config, data, evals)
    finally:
        stop_server(server)

    ranked = {item["model"]: item for item in body["ranked"]}  # type: ignore[attr-defined]
    assert set(ranked) == {"quick", "slow", "own"}
    # The eval run ranks "slow" first; the other two have no score.
    assert body["ranked"][0]["model"] == "slow"  # type: ignore[index]
    assert ranked["slow"]["eval_score"] == 1.0
    assert ranked["slow"]["latency"]["p50_ms"] >= SLOW_DELAY_S * 1000
    assert ranked["own"]["latency"] is None  # never called
    # Time to first token comes from the one streamed call.
    assert ranked["quick"]["latency"]["ttft_p50_ms"] is not None
    assert ranked["slow"]["latency"]["ttft_p50_ms"] is None
    # Prices: the catalog's for catalogued upstreams (1500 in + 300 out), none for "own".
    assert ranked["quick"]["cost_per_request"] == pytest.approx(1500 * 0.10e-6 + 300 * 0.40e-6)
    assert ranked["own"]["cost_per_request"] is None
    assert ranked["own"]["context_window"] == 32000
    assert ranked["slow"]["catalog"] == ["gpt-4o-mini"]

    # A latency bound between the two: "slow" is excluded by it, "quick" fits
    # exactly when its measured median is within it, "own" has no measurement.
    bound = SLOW_DELAY_S * 1000 - 50
    result = _cli(
        config, data, "recommend", "--task", "chat", "--max-latency", str(bound),
        "--evals", str(evals), "--json",
    )  # fmt: skip
    bounded = json.loads(result.stdout)
    excluded = {item["model"]: item["excluded_by"] for item in bounded["excluded"]}
    assert excluded["slow"][0].startswith("p50 latency ")
    assert excluded["own"] == ["no latency recorded (no successful chat call in the window)"]
    quick_fits = ranked["quick"]["latency"]["p50_ms"] <= bound
    assert ("quick" in excluded) is not quick_fits
    assert result.returncode == (0 if quick_fits else 1)

    # Nothing fits: a table line per model with what excluded it, exit 1.
    none = _cli(config, data, "recommend", "--task", "agent", "--max-cost", "0.00001")
    assert none.returncode == 1
    assert "no configured model fits:" in none.stdout
    assert "  own: excluded by tools support unknown" in none.stdout
    assert "  slow: excluded by $0.001200 a request > $1e-05" in none.stdout

    # A workload on a configured group is priced as the gateway prices it.
    cost = _cli(
        config, data, "cost", "--requests-per-day", "1000", "--input-tokens", "1000",
        "--output-tokens", "100", "--model", "quick", "--json",
    )  # fmt: skip
    assert cost.returncode == 0, cost.stderr
    assert json.loads(cost.stdout)["costs"][0]["per_day"] == pytest.approx(0.14)


def _event(n: int, **fields: object) -> UsageEvent:
    values: dict[str, object] = {
        "id": f"ev-{n}",
        "request_id": f"req-{n}",
        "created_at": 1_000_000.0 + n,
        "principal": "master",
        "endpoint": "chat",
        "model": "m",
        "deployment": "m#0",
        "status": "ok",
        "http_status": 200,
        "latency_ms": float(n),
    }
    values.update(fields)
    return UsageEvent.model_validate(values)


class ChatLatencyConformance:
    async def test_latest_successful_uncached_chat_calls(self, database: Database) -> None:
        await LedgerStore(database).insert(
            [
                *(_event(n) for n in range(1, 8)),
                _event(20, status="rate_limit_exceeded"),
                _event(21, cache_hit=True),
                _event(22, endpoint="embeddings"),
                _event(23, deployment="m#1", ttft_ms=5.0),
                _event(24, deployment=None, model="alias"),
                _event(0, created_at=10.0),  # before `since`
            ]
        )
        found = await chat_latencies(database, since=1_000_000.0, per_deployment=3)
        by_key = {(s.model, s.deployment): s for s in found}
        assert set(by_key) == {("m", "m#0"), ("m", "m#1"), ("alias", None)}
        assert by_key["m", "m#0"].latency_ms == (7.0, 6.0, 5.0)  # the newest three
        assert by_key["m", "m#1"].latency_ms == (23.0,)
        assert by_key["m", "m#1"].ttft_ms == (5.0,)
        assert by_key["alias", None].ttft_ms == ()


class TestSQLite(OnSQLite, ChatLatencyConformance):
    pass


class TestPostgres(OnPostgres, ChatLatencyConformance):
    pass
