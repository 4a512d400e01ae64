"""Run results, the self-contained HTML report, and comparing two runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatehouse.core.errors import ValidationFailedError
from gatehouse.evals import svg
from gatehouse.evals.compare import compare, render_text
from gatehouse.evals.report import render
from gatehouse.evals.results import (
    EvalRun,
    ItemResult,
    Score,
    percentile,
    read_run,
    summarise,
    write_run,
)


def make_run(values: dict[str, float | None], *, name: str = "r", kind: str = "answers") -> EvalRun:
    items = [
        ItemResult(
            id=ident,
            group="g1" if i % 2 else "g2",
            input=f"question <{ident}>",
            output="answer & <b>bold</b>",
            expected="ref",
            scores={
                "token_f1": Score.of(value, "judge said nothing", failed=value is None),
                "exact_match": Score.of(None, "no reference answer"),
            },
            latency_ms=[100.0 + i, 200.0 + i],
            notes=["claim NOT supported: <script>alert(1)</script>"],
        )
        for i, (ident, value) in enumerate(values.items())
    ]
    run = EvalRun.model_validate(
        {
            "kind": kind,
            "name": name,
            "created_at": "2026-12-01T10:00:00+00:00",
            "settings": {"collection": "facts", "judge": "local/smollm2"},
            "metrics": ["token_f1", "exact_match"],
            "items": [item.model_dump() for item in items],
        }
    )
    return run.summarise()


def test_scores_never_hold_nan_and_summaries_count_failures_and_skips() -> None:
    assert Score.of(float("nan")) == Score(value=None, reason="not a finite number", failed=True)
    assert Score.of(0.5, "ignored").reason is None
    summary = summarise(
        [
            Score.of(1.0),
            Score.of(0.0),
            Score.of(None, "x", failed=True),
            Score.of(None, "n/a"),
            None,
        ]
    )
    assert (summary.mean, summary.scored, summary.failed, summary.skipped) == (0.5, 2, 1, 2)
    assert summarise([Score.of(None, "x", failed=True)]).mean is None


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.95) == 5.0
    assert percentile([], 0.5) is None


def test_a_run_round_trips_through_json(tmp_path: Path) -> None:
    run = make_run({"q1": 0.5, "q2": None})
    write_run(run, tmp_path / "deep" / "run.json")
    again = read_run(tmp_path / "deep" / "run.json")
    assert again == run
    assert again.summary["token_f1"].failed == 1
    assert again.groups["g1"]["token_f1"].failed == 1
    assert "NaN" not in (tmp_path / "deep" / "run.json").read_text()


def test_reading_something_else_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"ndcg@10": 0.5}')
    with pytest.raises(ValidationFailedError, match="not a gatehouse eval run"):
        read_run(tmp_path / "x.json")
    with pytest.raises(ValidationFailedError, match="no such file"):
        read_run(tmp_path / "missing.json")


def test_the_report_is_self_contained_and_escapes_what_models_wrote() -> None:
    page = render(make_run({"q1": 0.9, "q2": None, "q3": 0.1}))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "answer &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    # no external asset: the only URL is the SVG namespace
    urls = set(re.findall(r"(?:https?:)?//[^\s\"'<>)]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert "<link" not in page
    assert "@import" not in page
    assert page.count("<svg") == 3  # two metric distributions and latency
    assert 'class="failed"' in page
    assert "judge said nothing" in page  # a failure's reason is shown
    assert "By group" in page


def test_histograms_bin_values_and_show_failures() -> None:
    chart = svg.histogram("t", [0.0, 0.05, 0.95, 1.0], failed=2)
    bars = re.findall(r"<title>([^<]+)</title>", chart)
    assert bars[0] == "0.0: 2"
    assert bars[9] == "0.9-1: 2"
    assert bars[10] == "failed: 2"
    assert svg.bars("lat", ["a"], [12.5], unit=" ms").count("<rect") == 2


def test_compare_lists_metric_means_and_per_item_differences() -> None:
    a = make_run({"q1": 0.5, "q2": 0.2, "q3": None, "only-a": 1.0}, name="a")
    b = make_run({"q1": 0.5, "q2": 0.6, "q3": 0.4, "only-b": 0.0}, name="b")
    result = compare(a, b, a_label="a.json", b_label="b.json")
    f1 = next(row for row in result.metrics if row.metric == "token_f1")
    assert f1.a == pytest.approx((0.5 + 0.2 + 1.0) / 3)
    assert f1.b == pytest.approx((0.5 + 0.6 + 0.4 + 0.0) / 4)
    assert (f1.a_failed, f1.b_failed) == (1, 0)
    diffs = {(d.id, d.metric): d for d in result.differences}
    assert set(diffs) == {("q2", "token_f1"), ("q3", "token_f1")}
    assert diffs[("q2", "token_f1")].delta == pytest.approx(0.4)
    assert diffs[("q3", "token_f1")].a is None
    assert diffs[("q3", "token_f1")].delta is None
    assert (result.only_in_a, result.only_in_b, result.same_items) == (["only-a"], ["only-b"], 1)
    text = render_text(result)
    assert "A: a.json" in text
    assert re.search(r"q2\s+token_f1\s+0\.200\s+0\.600\s+\+0\.400", text)
    assert "only in A: only-a" in text


def test_runs_of_different_kinds_are_not_compared() -> None:
    with pytest.raises(ValidationFailedError, match="cannot compare"):
        compare(make_run({"q": 1.0}), make_run({"q": 1.0}, kind="capabilities"))
