"""The overview's arithmetic: percentiles, buckets over time, groups."""

from __future__ import annotations

from gatehouse.core.records import UsageEvent
from gatehouse.ui import stats


def _event(at: float, *, latency: float = 10.0, cost: float = 0.0, **fields: object) -> UsageEvent:
    base: dict[str, object] = {
        "id": f"e{at}",
        "request_id": f"r{at}",
        "created_at": at,
        "principal": "key:k",
        "endpoint": "chat",
        "model": "m",
        "status": "ok",
        "http_status": 200,
        "latency_ms": latency,
        "cost_usd": cost,
    }
    return UsageEvent.model_validate({**base, **fields})


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert stats.percentile(values, 50) == 50
    assert stats.percentile(values, 95) == 95
    assert stats.percentile(values, 99) == 99
    assert stats.percentile([7.0], 99) == 7
    assert stats.percentile([], 50) is None


def test_totals_count_errors_tokens_spend_and_cache_hits() -> None:
    events = [
        _event(1, prompt_tokens=3, completion_tokens=4, cost=0.5, cache_hit=True),
        _event(2, status="rate_limit_exceeded", http_status=429, latency=30),
    ]
    totals = stats.totals(events)
    assert (totals.requests, totals.errors, totals.cache_hits) == (2, 1, 1)
    assert (totals.prompt_tokens, totals.completion_tokens, totals.cost_usd) == (3, 4, 0.5)
    assert totals.cache_hit_ratio == 0.5
    assert totals.error_ratio == 0.5
    assert stats.totals([]).cache_hit_ratio is None


def test_buckets_cover_the_window_and_drop_what_falls_outside() -> None:
    events = [_event(0), _event(59.9), _event(60), _event(179), _event(180), _event(-1)]
    buckets = stats.over_time(events, start=0, end=180, step=60)
    assert [b.requests for b in buckets] == [2, 1, 1]
    assert [b.label for b in buckets] == ["00:00", "00:01", "00:02"]


def test_groups_put_the_highest_spend_first_and_name_the_missing() -> None:
    events = [
        _event(1, cost=0.1, team="red"),
        _event(2, cost=0.1, team="red"),
        _event(3, cost=0.5, team="blue"),
        _event(4, cost=0.0),
    ]
    groups = stats.grouped(events, "team")
    assert [(g.label, g.requests) for g in groups] == [("blue", 1), ("red", 2), ("(none)", 1)]
    assert len(stats.grouped(events, "team", top=1)) == 1


def test_a_chart_of_cents_labels_its_axis_with_them() -> None:
    from gatehouse.evals.svg import bars

    chart = bars("Spend (USD)", ["a", "b"], [0.0859, 0.02], unit=" USD")
    assert ">0.086 USD<" in chart
    assert ">0 USD<" in chart
    assert ">12<" in bars("Requests", ["a"], [12])
