"""Ranking the configured models for a task: constraints, ties, missing data, eval scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.catalog.models import TaskProfile, shipped_catalog
from gatehouse.catalog.pricing import PricingTable
from gatehouse.catalog.scores import best_scores, read_runs, run_score
from gatehouse.catalog.selection import (
    Candidate,
    Constraints,
    Latency,
    candidates,
    group_latencies,
    recommend,
)
from gatehouse.core.config import Price, Settings
from gatehouse.evals.results import EvalRun, ItemResult, Score, write_run
from gatehouse.store.latency import LatencySample

CHAT = TaskProfile(input_tokens=1000, output_tokens=200)


def _candidate(
    name: str,
    *,
    window: int | None = 128_000,
    price: Price | None = None,
    supports: frozenset[str] | None = frozenset({"tools"}),
) -> Candidate:
    return Candidate(
        name=name,
        deployments=(f"{name}#0",),
        catalog=(name,),
        uncatalogued=() if supports is not None else (f"{name}-upstream",),
        context_window=window,
        supports=supports,  # type: ignore[arg-type]
        price=price,
    )


def _per_million(input_usd: float, output_usd: float) -> Price:
    return Price(input_cost_per_token=input_usd / 1e6, output_cost_per_token=output_usd / 1e6)


def _names(items: list[object]) -> list[str]:
    return [item.candidate.name for item in items]  # type: ignore[attr-defined]


def test_without_constraints_the_cheapest_ranks_first() -> None:
    found = [
        _candidate("dear", price=_per_million(10, 30)),
        _candidate("cheap", price=_per_million(0.1, 0.4)),
    ]
    result = recommend(found, Constraints("chat", CHAT), {}, {})
    assert _names(result.ranked) == ["cheap", "dear"]
    # 1000 x $0.10/M + 200 x $0.40/M
    assert result.ranked[0].cost == pytest.approx(0.00018)
    assert result.excluded == []


def test_each_failed_constraint_is_named() -> None:
    found = [
        _candidate("small", window=4000, price=_per_million(0.1, 0.4)),
        _candidate("dear", price=_per_million(10, 30)),
        _candidate("slow", price=_per_million(0.1, 0.4)),
        _candidate("fits", price=_per_million(0.1, 0.4)),
    ]
    latencies = {
        "small": Latency(5, 100, 150),
        "dear": Latency(5, 100, 150),
        "slow": Latency(5, 2500, 4000),
        "fits": Latency(5, 300, 900),
    }
    constraints = Constraints("chat", CHAT, max_cost=0.001, max_latency_ms=1000, context=8000)
    result = recommend(found, constraints, latencies, {})
    assert _names(result.ranked) == ["fits"]
    reasons = {a.candidate.name: a.excluded_by for a in result.excluded}
    assert reasons["small"] == ("context window 4,000 < 8,000 tokens",)
    assert reasons["dear"] == ("$0.016000 a request > $0.001",)
    assert reasons["slow"] == ("p50 latency 2,500 ms > 1,000 ms",)


def test_nothing_fits_lists_every_model_with_all_its_reasons() -> None:
    found = [_candidate("a", window=1000, price=_per_million(10, 30))]
    constraints = Constraints("chat", CHAT, max_cost=0.0001, max_latency_ms=100)
    result = recommend(found, constraints, {}, {})
    assert result.ranked == []
    assert result.excluded[0].excluded_by == (
        "context window 1,000 < 1,200 tokens",
        "$0.016000 a request > $0.0001",
        "no latency recorded (no successful chat call in the window)",
    )


def test_the_context_needed_defaults_to_the_typical_request() -> None:
    assert Constraints("chat", CHAT).needed_context == 1200
    assert Constraints("chat", CHAT, context=50_000).needed_context == 50_000


def test_unknown_values_fail_only_the_constraints_that_need_them() -> None:
    mystery = _candidate("mystery", window=None, price=None, supports=None)
    agent = TaskProfile(input_tokens=100, output_tokens=10, requires=["tools"])
    loose = recommend([mystery], Constraints("agent", agent), {}, {})
    assert loose.excluded[0].excluded_by == (
        "context window unknown (mystery-upstream not in the catalog: "
        "set catalog_model or context_window)",
        "tools support unknown (mystery-upstream not in the catalog: "
        "set catalog_model or context_window)",
    )
    priced = _candidate("known", price=None)
    no_cost_limit = recommend([priced], Constraints("chat", CHAT), {}, {})
    assert _names(no_cost_limit.ranked) == ["known"]
    assert no_cost_limit.ranked[0].cost is None
    with_limit = recommend([priced], Constraints("chat", CHAT, max_cost=1.0), {}, {})
    assert with_limit.excluded[0].excluded_by == (
        "no price (not in the catalog, no price in the config)",
    )


def test_requirements_come_from_the_task() -> None:
    vision = TaskProfile(input_tokens=100, output_tokens=10, requires=["image_input"])
    found = [
        _candidate("eyes", supports=frozenset({"image_input"})),
        _candidate("blind", supports=frozenset({"tools"})),
    ]
    result = recommend(found, Constraints("vision", vision), {}, {})
    assert _names(result.ranked) == ["eyes"]
    assert result.excluded[0].excluded_by == ("no image_input support",)


def test_missing_latency_ranks_after_measured_latency() -> None:
    price = _per_million(1, 1)
    found = [_candidate(n, price=price) for n in ("unmeasured", "slow", "quick")]
    latencies = {"slow": Latency(3, 900, 1000), "quick": Latency(3, 200, 300)}
    result = recommend(found, Constraints("chat", CHAT), latencies, {}, sort="latency")
    assert _names(result.ranked) == ["quick", "slow", "unmeasured"]


def test_eval_scores_rank_first_and_missing_scores_last() -> None:
    found = [
        _candidate("unscored", price=_per_million(0.1, 0.1)),
        _candidate("good", price=_per_million(5, 5)),
        _candidate("better", price=_per_million(9, 9)),
    ]
    scores = {"good": 0.7, "better": 0.9}
    result = recommend(found, Constraints("chat", CHAT), {}, scores)
    assert _names(result.ranked) == ["better", "good", "unscored"]
    by_cost = recommend(found, Constraints("chat", CHAT), {}, scores, sort="cost")
    assert _names(by_cost.ranked) == ["unscored", "good", "better"]


def test_ties_fall_through_to_the_next_measure_then_the_name() -> None:
    price = _per_million(1, 1)
    found = [_candidate(n, price=price) for n in ("zeta", "alpha", "mid")]
    latencies = {"zeta": Latency(3, 100, 100), "alpha": Latency(3, 500, 500)}
    scores = {"zeta": 0.8, "alpha": 0.8, "mid": 0.8}
    result = recommend(found, Constraints("chat", CHAT), latencies, scores)
    # Same score and cost: the measured latency decides, unknown last.
    assert _names(result.ranked) == ["zeta", "alpha", "mid"]
    level = recommend(found, Constraints("chat", CHAT), {}, {})
    assert _names(level.ranked) == ["alpha", "mid", "zeta"]


def _settings() -> Settings:
    return Settings.model_validate(
        {
            "models": [
                {
                    "name": "mixed",
                    "deployments": [
                        {"provider": "anthropic", "model": "claude-haiku-4-5"},
                        {"provider": "anthropic", "model": "claude-3-5-haiku-latest"},
                    ],
                },
                {
                    "name": "own",
                    "deployments": [
                        {
                            "id": "own-eu",
                            "provider": "openai_compat",
                            "model": "ft-1",
                            "base_url": "http://127.0.0.1:9/v1",
                            "context_window": 32_000,
                        }
                    ],
                },
                {
                    "name": "vectors",
                    "mode": "embedding",
                    "deployments": [
                        {
                            "provider": "openai_compat",
                            "model": "text-embedding-3-small",
                            "base_url": "http://127.0.0.1:9/v1",
                        }
                    ],
                },
            ],
            "aliases": {"default": "local/smollm2", "cheap": "mixed"},
        }
    )


def test_candidates_describe_the_configured_chat_groups() -> None:
    settings = _settings()
    found = {
        c.name: c
        for c in candidates(settings, shipped_catalog(), PricingTable.from_settings(settings))
    }
    assert set(found) == {"mixed", "own", "local/smollm2"}  # embedding groups are not chat
    mixed = found["mixed"]
    assert mixed.context_window == 200_000
    assert mixed.catalog == ("claude-haiku-4-5", "claude-3-5-haiku")
    # A request may land on either deployment: what both support, the dearer price.
    assert mixed.supports == frozenset({"tools", "image_input"})
    assert mixed.price is not None
    assert mixed.price.output_cost_per_token == pytest.approx(5e-6)
    own = found["own"]
    assert own.context_window == 32_000
    assert own.supports is None
    assert own.price is None
    assert own.uncatalogued == ("ft-1",)
    local = found["local/smollm2"]
    assert local.context_window == settings.local.chat.context_window
    assert local.price == Price()


def test_latency_samples_count_for_the_group_that_served_them() -> None:
    settings = _settings()
    found = candidates(settings, shipped_catalog(), PricingTable.from_settings(settings))
    samples = [
        LatencySample("mixed", "mixed#0", (100.0, 300.0), (40.0,)),
        # Asked by an alias, served by a deployment of mixed.
        LatencySample("cheap", "mixed#1", (200.0,), (20.0, 30.0)),
        LatencySample("own", "own-eu", (50.0,), ()),
        # No deployment recorded: the alias names the group.
        LatencySample("default", None, (900.0,), ()),
        LatencySample("gone", "gone#0", (1.0,), ()),  # a group no longer configured
    ]
    latencies = group_latencies(samples, found, settings.aliases)
    assert latencies["mixed"] == Latency(count=3, p50_ms=200.0, p95_ms=300.0, ttft_p50_ms=30.0)
    assert latencies["own"] == Latency(count=1, p50_ms=50.0, p95_ms=50.0, ttft_p50_ms=None)
    assert latencies["local/smollm2"].count == 1
    assert "gone" not in latencies


def _run(kind: str, model: str, created_at: str, passes: dict[str, list[bool]]) -> EvalRun:
    metric = "pass_rate" if kind == "capabilities" else "token_f1"
    items = [
        ItemResult(
            id=f"{group}-{i}",
            group=group,
            input="q",
            scores={metric: Score.of(1.0 if ok else 0.0)},
        )
        for group, results in passes.items()
        for i, ok in enumerate(results)
    ]
    return EvalRun(
        kind=kind,  # type: ignore[arg-type]
        name="r",
        created_at=created_at,
        settings={"model": model},
        metrics=[metric],
        items=items,
    ).summarise()


def test_a_runs_score_depends_on_the_task() -> None:
    catalog = shipped_catalog()
    run = _run("capabilities", "m", "2026-01-01", {"coding": [True, False], "math": [True]})
    assert run_score(run, "code", catalog.tasks["code"]) == 0.5  # the coding suite
    assert run_score(run, "chat", catalog.tasks["chat"]) == pytest.approx(2 / 3)  # overall
    assert run_score(run, "extraction", catalog.tasks["extraction"]) is None  # not tested
    answers = _run("answers", "m", "2026-01-01", {"": [True, True, False, True]})
    assert run_score(answers, "rag", catalog.tasks["rag"]) == 0.75
    assert run_score(answers, "chat", catalog.tasks["chat"]) is None


def test_the_newest_scored_run_wins_and_aliases_resolve(tmp_path: Path) -> None:
    write_run(
        _run("capabilities", "cheap", "2026-01-01T00:00:00", {"math": [False]}), tmp_path / "a.json"
    )
    write_run(
        _run("capabilities", "mixed", "2026-02-01T00:00:00", {"math": [True]}), tmp_path / "b.json"
    )
    write_run(
        _run("capabilities", "own", "2026-03-01T00:00:00", {"math": [True]}), tmp_path / "c.json"
    )
    write_run(
        _run("capabilities", "own", "2026-04-01T00:00:00", {"coding": [False]}), tmp_path / "d.json"
    )
    (tmp_path / "notes.json").write_text('{"not": "a run"}')
    runs, skipped = read_runs(tmp_path)
    assert len(runs) == 4
    assert len(skipped) == 1
    assert "notes.json" in skipped[0]
    math = shipped_catalog().tasks["math"]
    scores = best_scores(runs, "math", math, {"cheap": "mixed"})
    assert scores["mixed"].score == 1.0  # b.json is newer than a.json (asked as "cheap")
    assert scores["own"].score == 1.0  # d.json did not test math: c.json stands
    assert read_runs(tmp_path / "absent") == ([], [])
