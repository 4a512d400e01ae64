"""The request log (`/admin/requests`) and spend after retention, over HTTP in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gatehouse.store.ledger import decode_cursor, encode_cursor
from gatehouse.store.retention import cutoff
from gatehouse.store.rollups import DAY, SpendWindow, aggregate, day_of, spend_window

from .governed import Governed, governed_app
from .test_governance_api import reserved

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path):
        yield governed


async def chat(gov: Governed, key: str, text: str = "hello") -> str:
    """One chat call; returns its request id."""
    response = await gov.http.post(
        "/v1/chat/completions",
        json={"model": "default", "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {key}"},
    )
    gov.clock.advance(1.0)
    return response.headers["x-request-id"]


async def traffic(gov: Governed) -> dict[str, Any]:
    red = await gov.new_key(team="red", limits={"rpm": 2})
    blue = await gov.new_key(team="blue")
    ids = {
        "red": [await chat(gov, red), await chat(gov, red, "a b c")],
        "refused": await chat(gov, red),  # the third within the minute: 429
        "blue": [await chat(gov, blue, "x y")],
    }
    await gov.governance.shipper.drain()
    return {"red": red, "blue": blue, "ids": ids}


async def get(gov: Governed, path: str) -> Any:
    response = await gov.admin("GET", path)
    assert response.status_code == 200, response.text
    return response.json()


async def test_filters_by_team_key_status_and_time(gov: Governed) -> None:
    sent = await traffic(gov)
    every = (await get(gov, "/admin/requests"))["events"]
    assert len(every) == 4
    assert [e["created_at"] for e in every] == sorted(
        (e["created_at"] for e in every), reverse=True
    )
    red = (await get(gov, "/admin/requests?team=red"))["events"]
    assert {e["request_id"] for e in red} == {*sent["ids"]["red"], sent["ids"]["refused"]}
    blue_key = sent["blue"][3:19]
    assert [e["key_id"] for e in (await get(gov, f"/admin/requests?key={blue_key}"))["events"]] == [
        blue_key
    ]
    refused = (await get(gov, "/admin/requests?status=error"))["events"]
    assert [(e["status"], e["http_status"]) for e in refused] == [("rate_limit_exceeded", 429)]
    assert (await get(gov, "/admin/requests?status=rate_limit_exceeded"))["events"] == refused
    assert len((await get(gov, "/admin/requests?status=ok&model=default"))["events"]) == 3
    first, second = every[-1]["created_at"], every[-2]["created_at"]
    window = (await get(gov, f"/admin/requests?since={first}&until={second}"))["events"]
    assert [e["created_at"] for e in window] == [first]
    assert (await get(gov, f"/admin/requests?request_id={sent['ids']['blue'][0]}"))["events"][0][
        "team"
    ] == "blue"


async def test_what_happened_to_request_x(gov: Governed) -> None:
    sent = await traffic(gov)
    found = await get(gov, f"/admin/requests/{sent['ids']['refused']}")
    assert found["request_id"] == sent["ids"]["refused"]
    [event] = found["events"]
    assert event["status"] == "rate_limit_exceeded"
    assert event["error"]
    missing = await gov.admin("GET", "/admin/requests/req-nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["param"] == "request_id"


async def test_cursor_pages_walk_everything_once_while_requests_arrive(gov: Governed) -> None:
    key = await gov.new_key()
    for n in range(7):
        await chat(gov, key, f"message {n}")
    await gov.governance.shipper.drain()
    seen: list[str] = []
    page = await get(gov, "/admin/requests?limit=3")
    while True:
        seen.extend(e["id"] for e in page["events"])
        await chat(gov, key, "arriving meanwhile")  # newer: never on a later page
        await gov.governance.shipper.drain()
        if page["next_cursor"] is None:
            break
        page = await get(gov, f"/admin/requests?limit=3&cursor={page['next_cursor']}")
    assert len(seen) == len(set(seen)) == 7


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("since=yesterday", "since"),
        ("until=soon", "until"),
        ("since=2026-05-29T00:00:00Z&until=2026-05-28T00:00:00Z", "until"),
        ("cursor=not-a-cursor", "cursor"),
        (f"cursor={encode_cursor((1.0, 'x'))[:-2]}", "cursor"),
        ("team=", "team"),
        ("key_id=abc", "key_id"),
    ],
)
async def test_bad_filters_are_a_400_naming_the_parameter(
    gov: Governed, query: str, param: str
) -> None:
    response = await gov.admin("GET", f"/admin/requests?{query}")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("query", "param"),
    [("colour=red", "colour"), ("team=", "team"), ("group_by=week", "group_by")],
)
async def test_bad_spend_filters_are_a_400_naming_the_parameter(
    gov: Governed, query: str, param: str
) -> None:
    response = await gov.admin("GET", f"/admin/spend?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_only_admins_see_the_request_log(gov: Governed) -> None:
    sent = await traffic(gov)
    request_id = sent["ids"]["red"][0]
    for key in (sent["red"], sent["blue"]):  # a team's own key sees no request log either
        for path in ("/admin/requests", f"/admin/requests/{request_id}"):
            headers = {"authorization": f"Bearer {key}"}
            denied = await gov.http.get(path, headers=headers)
            assert denied.status_code == 403
            assert "admin" in denied.json()["error"]["message"]
    assert (await gov.http.get("/admin/requests")).status_code == 401
    admin_key = await gov.new_key(scopes=["admin"])
    allowed = await gov.http.get(
        "/admin/requests", headers={"authorization": f"Bearer {admin_key}"}
    )
    assert allowed.status_code == 200


async def test_spend_is_unchanged_by_purging_the_raw_events(gov: Governed) -> None:
    sent = await traffic(gov)
    spend = {
        group: (await get(gov, f"/admin/spend?group_by={group}"))["rows"]
        for group in ("team", "key", "model", "deployment", "day")
    }
    assert {row["group"] for row in spend["team"]} == {"red", "blue"}
    red_by_day = await get(gov, "/admin/spend?group_by=day&team=red")
    assert [(r["group"], r["requests"], r["refused"]) for r in red_by_day["rows"]] == [
        ("2026-05-28", 3, 1)
    ]
    assert [row["group"] for row in spend["day"]] == ["2026-05-28"]
    gov.clock.advance(45 * DAY)
    report = await gov.governance.retention.run_once()
    assert (report.rolled_up, report.events_deleted) == (4, 4)
    assert await gov.governance.ledger.count() == 0
    for group, rows in spend.items():
        assert (await get(gov, f"/admin/spend?group_by={group}"))["rows"] == rows
    assert (await get(gov, "/admin/requests"))["events"] == []
    gone = await gov.admin("GET", f"/admin/requests/{sent['ids']['blue'][0]}")
    assert gone.status_code == 404
    assert "purged" in gone.json()["error"]["message"]
    # Budgets seeded from the ledger still see the purged spend.
    red_team_cost = next(r["cost_usd"] for r in spend["team"] if r["group"] == "red")
    assert await gov.governance.ledger.spent("team", "red", 0.0) == red_team_cost


async def test_a_hard_total_budget_still_binds_after_a_purge_and_a_restart(
    tmp_path: Path,
) -> None:
    # Two calls (3 USD each) fit; a third's reservation would pass the budget.
    budget = 3 + reserved(2) + 1
    first = governed_app(tmp_path)
    gov = await anext(first)
    key = await gov.new_key(budget={"max_usd": budget, "period": "total"})
    for _ in range(2):
        await gov.sdk(key).chat.completions.create(model="default", messages=HELLO, max_tokens=2)
    await gov.governance.shipper.drain()
    gov.clock.advance(45 * DAY)
    await gov.governance.retention.run_once()
    assert await gov.governance.ledger.count() == 0
    await first.aclose()
    # A restart seeds the budget's fresh counter from the rollups: 6 USD spent.
    second = governed_app(tmp_path)
    gov = await anext(second)
    try:
        with pytest.raises(openai.RateLimitError, match="Budget exceeded"):
            await gov.sdk(key).chat.completions.create(
                model="default", messages=HELLO, max_tokens=2
            )
    finally:
        await second.aclose()


def test_the_spend_window_splits_at_midnights() -> None:
    midnight = 1_779_926_400.0
    assert spend_window(0.0, 0.0) == SpendWindow(0.0, None)
    assert spend_window(midnight, 0.0) == SpendWindow(midnight, None)
    assert spend_window(midnight + 60, 0.0) == SpendWindow(midnight + DAY, midnight + 60)
    # The day is purged: only its rollup is left, so the whole day counts.
    assert spend_window(midnight + 60, midnight + DAY) == SpendWindow(midnight, None)
    assert cutoff(midnight + 3600, 1) == midnight
    assert cutoff(midnight + 3600, 30) == midnight - 29 * DAY
    assert cutoff(midnight, None) is None


def test_aggregate_sums_per_day_and_dimensions() -> None:
    base = {
        "team": "red",
        "key_id": None,
        "user": None,
        "org": None,
        "model": "m",
        "deployment": "m#0",
        "cache_hit": False,
        "prompt_tokens": 2,
        "completion_tokens": 3,
        "cached_tokens": 1,
        "cache_write_tokens": 1,
        "reasoning_tokens": 2,
        "cost_usd": 0.5,
        "latency_ms": 10.0,
    }
    midnight = 1_779_926_400.0
    rows = [
        {**base, "created_at": midnight, "status": "ok"},
        {**base, "created_at": midnight + DAY - 0.001, "status": "timeout", "cache_hit": True},
        {**base, "created_at": midnight + DAY, "status": "ok"},
    ]
    totals = aggregate(rows)
    first = totals[(day_of(midnight), "red", "", "", "", "m", "m#0")]
    assert (first.requests, first.errors, first.cache_hits, first.prompt_tokens) == (2, 1, 1, 4)
    assert (first.cached_tokens, first.cache_write_tokens, first.reasoning_tokens) == (2, 2, 4)
    assert (first.cost_usd, first.latency_ms) == (1.0, 20.0)
    assert totals[("2026-05-29", "red", "", "", "", "m", "m#0")].requests == 1


def test_cursors_round_trip_and_refuse_forgeries() -> None:
    position = (1_779_926_400.123456, "ev-1")
    assert decode_cursor(encode_cursor(position)) == position
    for token in ("", "!!", encode_cursor((1.0, "x"))[:-3], "WzEsMiwzXQ", "WyJhIiwiYiJd"):
        with pytest.raises(ValueError, match="cursor"):
            decode_cursor(token)
