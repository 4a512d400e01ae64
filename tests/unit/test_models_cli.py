"""``gatehouse models catalog | cost | recommend`` from the main entry point, in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatehouse.catalog.models import shipped_catalog
from gatehouse.cli.main import main


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "gatehouse.yaml"
    config.write_text(
        "local:\n  chat:\n    enabled: false\n"
        "models:\n"
        "  - name: haiku\n"
        "    deployments:\n"
        "      - {provider: anthropic, model: claude-haiku-4-5-20251001}\n"
        "  - name: priced\n"
        "    deployments:\n"
        "      - {provider: anthropic, model: claude-haiku-4-5, input_cost_per_token: 0.0000002,"
        " output_cost_per_token: 0.000001}\n"
    )
    return config


def _run(tmp_path: Path, *args: str) -> int:
    return main(["--config", str(_config(tmp_path)), "--data-dir", str(tmp_path / "d"), *args])


def test_catalog_json_is_the_loaded_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, "models", "catalog", "--json") == 0
    body = json.loads(capsys.readouterr().out)
    assert body == shipped_catalog().model_dump(mode="json")


def test_catalog_table_names_every_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, "models", "catalog") == 0
    out = capsys.readouterr().out
    for name in shipped_catalog().models:
        assert f"\n{name} " in out
    assert out.rstrip().endswith(f"catalog as of {shipped_catalog().as_of}")


def test_cost_of_groups_and_catalog_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        tmp_path,
        "models",
        "cost",
        "--requests-per-day",
        "2000",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "200",
        "--model",
        "haiku",
        "--model",
        "priced",
        "--model",
        "gpt-4o-mini",
        "--json",
    )
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    costs = {c["model"]: c for c in body["costs"]}
    # haiku: the catalog's $1 / $5 per million; priced: its config's own price.
    assert costs["haiku"]["per_request"] == pytest.approx(1000 * 1e-6 + 200 * 5e-6)
    assert costs["priced"]["per_day"] == pytest.approx(2000 * (1000 * 2e-7 + 200 * 1e-6))
    assert costs["gpt-4o-mini"]["per_month"] == pytest.approx(
        30 * 2000 * (1000 * 0.15e-6 + 200 * 0.6e-6)
    )
    assert [c["model"] for c in body["costs"]] == ["gpt-4o-mini", "priced", "haiku"]


def test_cost_refuses_unknown_models_and_fractions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["models", "cost", "--requests-per-day", "1", "--input-tokens", "1"]
    base += ["--output-tokens", "1"]
    assert _run(tmp_path, *base, "--model", "gpt-99") == 1
    assert "'gpt-99' is neither a priced model group nor in the catalog" in capsys.readouterr().err
    assert _run(tmp_path, *base, "--cached-fraction", "2") == 1
    assert "--cached-fraction must be between 0 and 1" in capsys.readouterr().err


def test_recommend_without_traffic_or_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no eval-runs folder here
    assert _run(tmp_path, "models", "recommend", "--task", "vision", "--json") == 0
    body = json.loads(capsys.readouterr().out)
    assert [item["model"] for item in body["ranked"]] == ["priced", "haiku"]  # cheaper first
    assert all(item["latency"] is None for item in body["ranked"])
    assert body["constraints"]["requires"] == ["image_input"]
    # No ledger yet: nothing is created, and a latency bound excludes all.
    assert _run(tmp_path, "models", "recommend", "--task", "vision", "--max-latency", "500") == 1
    out = capsys.readouterr().out
    assert "no configured model fits:" in out
    assert not (tmp_path / "d" / "gatehouse.db").exists()


def test_recommend_an_unknown_task_lists_the_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, "models", "recommend", "--task", "poetry") == 1
    err = capsys.readouterr().err
    assert "unknown task 'poetry': choose from agent, chat, code" in err
