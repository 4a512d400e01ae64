"""Alerts: the rules (thresholds, windows, dedupe, rate limit), the payloads, the
delivery (through httpx's MockTransport) and the limits stage's budget hook."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gatehouse.core.config import AlertsConfig
from gatehouse.core.errors import ErrorType
from gatehouse.core.observation import RequestRecord
from gatehouse.core.records import BudgetSpend, period_window
from gatehouse.observability.alert_rules import (
    Alert,
    Backlog,
    BreakerCount,
    BreakerOpenings,
    BudgetThresholds,
    Deduper,
    ErrorRate,
    TokenBucket,
    is_failure,
    json_payload,
    slack_payload,
)
from gatehouse.observability.alerts import AlertNotifier, ClaimOnce

from .governed import Governed, governed_app
from .test_metrics import record as request_record

NOW = 1_780_000_000.0  # 2026-05-28, inside May's month budget period
HOOK = "https://hooks.example/services/T0/B0/secret-path"


def spend(spent: float, *, max_usd: float = 10.0, label: str = "2026-05") -> BudgetSpend:
    _, _, ends = period_window("month", NOW)
    return BudgetSpend("key", "key-7f3a", "month", label, ends, max_usd, spent, False)


def record(group: str | None, status: int = 200, **fields: Any) -> RequestRecord:
    error: ErrorType | None = fields.pop("error_type", None if status < 400 else "server")
    return request_record(group=group, status=status, error_type=error, **fields)


def alert(key: str = "error_rate:g", *, hold: float | None = None, at: float = NOW) -> Alert:
    return Alert(
        kind="error_rate",
        severity="critical",
        summary="Model group g: 60% of 20 requests failed in the last 60s",
        subject={"group": "g"},
        values={"error_rate": 0.6},
        at=at,
        dedupe_key=key,
        hold=hold,
    )


# -- budgets -----------------------------------------------------------------------


def test_each_budget_threshold_fires_once_as_spend_crosses_it() -> None:
    rule = BudgetThresholds([50, 80, 100])
    fired = []
    for spent in (1.0, 4.9, 5.0, 6.0, 7.9, 8.0, 9.9, 10.0, 12.0):
        found = rule.check(spend(spent), NOW)
        if found is not None:
            fired.append((spent, found.values["threshold_percent"], found.severity))
    assert fired == [(5.0, 50, "info"), (8.0, 80, "warning"), (10.0, 100, "critical")]


def test_a_jump_past_several_thresholds_reports_the_highest_only() -> None:
    rule = BudgetThresholds([50, 80, 100])
    found = rule.check(spend(8.5), NOW)
    assert found is not None
    assert found.values["threshold_percent"] == 80
    assert rule.check(spend(6.0), NOW) is None  # 50 % is behind it now
    assert rule.check(spend(9.0), NOW) is None


def test_a_new_budget_period_fires_again_and_the_claim_lasts_until_the_period_ends() -> None:
    rule = BudgetThresholds([80])
    may = rule.check(spend(9.0), NOW)
    june = rule.check(spend(9.0, label="2026-06"), NOW)
    assert may is not None
    assert june is not None
    assert may.dedupe_key != june.dedupe_key
    _, _, ends = period_window("month", NOW)
    assert may.hold is not None
    assert may.hold > ends - NOW


def test_a_budget_for_all_time_is_claimed_for_ever_and_a_zero_budget_never_alerts() -> None:
    rule = BudgetThresholds([50])
    total = BudgetSpend("team", "ops", "total", "total", math.inf, 4.0, 3.0, True)
    found = rule.check(total, NOW)
    assert found is not None
    assert found.hold == 0.0
    assert found.subject == {"team": "ops"}
    assert rule.check(spend(5.0, max_usd=0.0), NOW) is None


def test_a_budget_alert_names_the_key_by_id_with_its_figures() -> None:
    found = BudgetThresholds([50, 80, 100]).check(spend(8.25), NOW)
    assert found is not None
    assert found.kind == "budget"
    assert found.subject == {"key_id": "key-7f3a"}
    assert found.values["spent_percent"] == 82.5
    assert found.values["max_usd"] == 10.0
    assert found.values["period_label"] == "2026-05"


# -- error rate ----------------------------------------------------------------------


def test_the_error_rate_fires_once_past_the_threshold_with_enough_requests() -> None:
    rule = ErrorRate(threshold=0.5, window=60, min_requests=10)
    fired = []
    for i in range(9):  # 9 requests, all failed: too few to say
        fired.append(rule.observe("g", True, NOW + i))
    assert fired == [None] * 9
    spike = rule.observe("g", True, NOW + 9)
    assert spike is not None
    assert spike.subject == {"group": "g"}
    assert spike.values["requests"] == 10
    assert spike.values["failures"] == 10
    assert rule.observe("g", True, NOW + 10) is None  # still firing: not again


def test_the_error_rate_fires_again_only_after_falling_below_the_threshold() -> None:
    rule = ErrorRate(threshold=0.5, window=60, min_requests=4)
    outcomes = [True, True, True, True, False, False, False, False, False, True, True, True]
    fired = [i for i, failed in enumerate(outcomes) if rule.observe("g", failed, NOW + i)]
    # 4 of 4 failed at i=3; 4 of 8 (i=7) is still at the threshold; 4 of 9 (i=8)
    # is below it and re-arms; 5 of 10 (i=9) fires again.
    assert fired == [3, 9]


def test_the_window_slides_old_failures_out() -> None:
    rule = ErrorRate(threshold=0.5, window=60, min_requests=4)
    for i in range(3):
        assert rule.observe("g", True, NOW + i) is None
    # A minute later the three failures have left the window: 1 failure of 4.
    later = NOW + 120
    results = [rule.observe("g", failed, later) for failed in (False, False, False, True)]
    assert results == [None, None, None, None]


def test_groups_are_counted_apart() -> None:
    rule = ErrorRate(threshold=0.5, window=60, min_requests=2)
    assert rule.observe("a", True, NOW) is None
    assert rule.observe("b", False, NOW) is None
    assert rule.observe("b", False, NOW) is None
    assert rule.observe("a", True, NOW) is not None


def test_only_upstream_failures_count_as_errors() -> None:
    assert is_failure(record("g", 502))
    assert is_failure(record("g", 429, error_type="rate_limit"))
    assert is_failure(record("g", 504, error_type="timeout"))
    assert not is_failure(record("g", 200))
    assert not is_failure(record("g", 400, error_type="bad_request"))
    assert not is_failure(record("g", 429, error_type="rate_limit", refusal="rate_limit"))
    assert not is_failure(record("g", 499, error_type=None))


# -- breakers and backlog -----------------------------------------------------------


def test_a_breaker_alert_per_opening() -> None:
    rule = BreakerOpenings()
    closed = [BreakerCount("g", "g#0", 0), BreakerCount("g", "g#1", 0)]
    assert rule.check(closed, NOW) == []
    opened = rule.check([BreakerCount("g", "g#0", 1), BreakerCount("g", "g#1", 0)], NOW)
    assert [a.subject for a in opened] == [{"group": "g", "deployment": "g#0"}]
    assert rule.check([BreakerCount("g", "g#0", 1)], NOW) == []  # still the same opening
    assert len(rule.check([BreakerCount("g", "g#0", 2)], NOW)) == 1


def test_the_backlog_fires_at_the_threshold_and_again_after_recovering() -> None:
    rule = Backlog(threshold=100)
    assert rule.check(99, NOW) is None
    first = rule.check(100, NOW)
    assert first is not None
    assert first.values == {"backlog": 100, "threshold": 100}
    assert rule.check(5000, NOW) is None
    assert rule.check(10, NOW) is None
    assert rule.check(150, NOW) is not None


# -- dedupe and rate limit ------------------------------------------------------------


def test_the_same_alert_passes_once_per_dedupe_window() -> None:
    dedupe = Deduper(hold=300)
    assert dedupe.first(alert(), NOW)
    assert not dedupe.first(alert(), NOW + 299)
    assert dedupe.first(alert("error_rate:other"), NOW + 1)
    assert dedupe.first(alert(), NOW + 300)


def test_an_alert_can_hold_its_key_longer_or_for_ever() -> None:
    dedupe = Deduper(hold=300)
    assert dedupe.first(alert("b", hold=3600), NOW)
    assert not dedupe.first(alert("b", hold=3600), NOW + 3000)
    assert dedupe.first(alert("forever", hold=0), NOW)
    assert not dedupe.first(alert("forever", hold=0), NOW + 10**9)


def test_the_token_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(per_minute=3, now=NOW)
    assert [bucket.take(NOW) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(NOW + 19)  # one token every 20 s
    assert bucket.take(NOW + 20)
    assert not bucket.take(NOW + 20)
    assert [bucket.take(NOW + 1000) for _ in range(4)] == [True, True, True, False]


# -- payloads ------------------------------------------------------------------------


def test_the_json_payload() -> None:
    found = BudgetThresholds([80]).check(spend(8.0), NOW)
    assert found is not None
    body = json_payload(found, "gw-1")
    assert body == {
        "source": "gatehouse",
        "event": "budget",
        "severity": "warning",
        "summary": "Budget of key key-7f3a at 80% (8.0000 of 10.0000 USD, month 2026-05)",
        "subject": {"key_id": "key-7f3a"},
        "values": {
            "threshold_percent": 80,
            "spent_percent": 80.0,
            "spent_usd": 8.0,
            "max_usd": 10.0,
            "period": "month",
            "period_label": "2026-05",
            "hard": "no",
        },
        "timestamp": "2026-05-28T20:26:40Z",
        "instance": "gw-1",
    }
    orjson.dumps(body)  # serialisable as it is


def test_the_slack_payload_has_text_and_blocks_and_escapes_markup() -> None:
    found = Alert(
        kind="breaker_open",
        severity="warning",
        summary="Circuit breaker of deployment <a&b> opened",
        subject={"group": "g", "deployment": "<a&b>"},
        values={"openings": 1},
        at=NOW,
        dedupe_key="breaker_open:<a&b>",
    )
    body = slack_payload(found, "gw-1")
    assert set(body) == {"text", "blocks"}
    assert (
        body["text"] == ":warning: gatehouse: Circuit breaker of deployment &lt;a&amp;b&gt; opened"
    )
    header, section, context = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Circuit breaker open (warning)"},
    }
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    assert [f["text"] for f in section["fields"]] == [
        "*group*\ng",
        "*deployment*\n&lt;a&amp;b&gt;",
        "*openings*\n1",
    ]
    assert context["type"] == "context"
    assert context["elements"][0]["text"].startswith("gw-1 · 2026-05-28T20:26:40Z")


def test_slack_gets_at_most_ten_fields() -> None:
    found = BudgetThresholds([50]).check(spend(6.0), NOW)
    assert found is not None
    fields = slack_payload(found, "gw")["blocks"][1]["fields"]
    assert len(fields) == 8  # one subject + seven values
    many = Alert("error_rate", "info", "s", {}, {f"v{i}": i for i in range(15)}, NOW, "k")
    assert len(slack_payload(many, "gw")["blocks"][1]["fields"]) == 10


# -- delivery ----------------------------------------------------------------------------


class Receiver:
    """A webhook behind httpx.MockTransport: answers each POST with the next status."""

    def __init__(self, *statuses: int | Exception) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(orjson.loads(request.content))
        self.headers.append(request.headers)
        status = self.statuses.pop(0) if self.statuses else 200
        if isinstance(status, Exception):
            raise status
        return httpx.Response(status)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def notifier(receiver: Receiver, clock: Clock | None = None, **config: Any) -> AlertNotifier:
    webhook = {"url": HOOK, **config.pop("webhook", {})}
    settings = AlertsConfig.model_validate(
        {"webhooks": [webhook], "instance": "gw-test", "max_retries": 2, **config}
    )
    return AlertNotifier(
        settings, clock=clock or Clock(), transport=httpx.MockTransport(receiver), backoff=0
    )


Start = Callable[..., Awaitable[AlertNotifier]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """``await start(receiver, clock=None, claim_once=None, **alerts_config)``: a
    started notifier posting to ``receiver``, stopped after the test."""
    started: list[AlertNotifier] = []

    async def starting(
        receiver: Receiver,
        clock: Clock | None = None,
        claim_once: ClaimOnce | None = None,
        **config: Any,
    ) -> AlertNotifier:
        alerts = notifier(receiver, clock, **config)
        if claim_once is not None:
            alerts.dedupe_with(claim_once)
        started.append(alerts)
        await alerts.start()
        return alerts

    yield starting
    for alerts in started:
        await alerts.stop()


async def deliver(alerts: AlertNotifier, *sent: Alert) -> None:
    for one in sent:
        alerts.emit(one)
    await alerts.drain()


async def test_an_alert_is_delivered_once_despite_repeats(start: Start) -> None:
    receiver = Receiver()
    alerts = await start(receiver, webhook={"headers": {"authorization": "Bearer t"}})
    await deliver(alerts, alert(), alert(), alert())
    assert [b["event"] for b in receiver.bodies] == ["error_rate"]
    assert receiver.bodies[0]["instance"] == "gw-test"
    assert receiver.headers[0]["authorization"] == "Bearer t"
    assert alerts.counts["error_rate", "sent"] == 1
    assert alerts.counts["error_rate", "deduplicated"] == 2


async def test_5xx_and_connection_errors_are_retried(start: Start) -> None:
    receiver = Receiver(503, httpx.ConnectError("refused"), 200)
    alerts = await start(receiver)
    await deliver(alerts, alert())
    assert len(receiver.bodies) == 3
    assert alerts.counts["error_rate", "sent"] == 1


async def test_a_delivery_that_keeps_failing_is_counted_not_raised(start: Start) -> None:
    receiver = Receiver(500, 502, 503, 504)
    alerts = await start(receiver)
    await deliver(alerts, alert())
    assert len(receiver.bodies) == 3  # max_retries 2: three attempts
    assert alerts.counts["error_rate", "failed"] == 1
    metric = next(iter(alerts.collector().collect()))
    failed = [s for s in metric.samples if s.labels == {"event": "error_rate", "outcome": "failed"}]
    assert failed[0].value == 1


async def test_a_client_error_is_not_retried(start: Start) -> None:
    receiver = Receiver(404)
    alerts = await start(receiver)
    await deliver(alerts, alert())
    assert len(receiver.bodies) == 1
    assert alerts.counts["error_rate", "failed"] == 1


async def test_each_webhook_is_rate_limited(start: Start) -> None:
    receiver = Receiver()
    clock = Clock()
    alerts = await start(receiver, clock, max_per_minute=2)
    await deliver(alerts, *(alert(f"error_rate:g{i}") for i in range(5)))
    assert len(receiver.bodies) == 2
    assert alerts.counts["error_rate", "rate_limited"] == 3
    clock.now += 30  # one token back
    await deliver(alerts, alert("error_rate:later"))
    assert len(receiver.bodies) == 3


async def test_a_webhook_gets_only_the_events_it_asked_for(start: Start) -> None:
    receiver = Receiver()
    alerts = await start(receiver, webhook={"events": ["budget"], "format": "slack"})
    alerts.budget_spent(spend(9.0))
    await deliver(alerts, alert())
    assert len(receiver.bodies) == 1
    assert set(receiver.bodies[0]) == {"text", "blocks"}
    assert "key-7f3a" in receiver.bodies[0]["text"]


async def test_a_claim_won_elsewhere_suppresses_the_alert(start: Start) -> None:
    receiver = Receiver()
    claims: list[tuple[str, float]] = []

    async def claim_once(key: str, ttl: float) -> bool:
        claims.append((key, ttl))
        return key.endswith("mine")

    alerts = await start(receiver, claim_once=claim_once)
    await deliver(alerts, alert("error_rate:mine"), alert("error_rate:theirs"))
    assert claims == [("alert:error_rate:mine", 300.0), ("alert:error_rate:theirs", 300.0)]
    assert len(receiver.bodies) == 1
    assert alerts.counts["error_rate", "deduplicated"] == 1


async def test_an_unreachable_claim_store_sends_rather_than_loses(start: Start) -> None:
    async def claim_once(key: str, ttl: float) -> bool:
        raise ConnectionError("redis is down")

    receiver = Receiver()
    await deliver(await start(receiver, claim_once=claim_once), alert())
    assert len(receiver.bodies) == 1


async def test_a_full_queue_drops_and_counts() -> None:
    receiver = Receiver()
    alerts = notifier(receiver, queue_size=2)
    for i in range(4):  # not started: nothing takes from the queue yet
        alerts.emit(alert(f"error_rate:g{i}"))
    assert alerts.counts["error_rate", "dropped"] == 2
    await alerts.start()
    await alerts.stop()
    assert len(receiver.bodies) == 2


async def test_request_records_feed_the_error_rate(start: Start) -> None:
    receiver = Receiver()
    alerts = await start(receiver, error_rate={"threshold": 0.5, "min_requests": 4})
    alerts.request_done(record(None, 429, refusal="rate_limit"))  # no group: not counted
    for status in (200, 502, 503, 502):
        alerts.request_done(record("up", status))
    await alerts.drain()
    assert [(b["event"], b["subject"]) for b in receiver.bodies] == [
        ("error_rate", {"group": "up"})
    ]
    assert receiver.bodies[0]["values"]["failures"] == 3


async def test_breakers_and_backlog_are_read_when_checked(start: Start) -> None:
    receiver = Receiver()
    openings = {"up#0": 0}
    backlog = [0]
    alerts = await start(receiver, outbox_backlog={"threshold": 10})
    alerts.watch_breakers(lambda: [BreakerCount("up", d, n) for d, n in openings.items()])
    alerts.watch_backlog(lambda: backlog[0])
    alerts.check()
    openings["up#0"] = 1
    backlog[0] = 12
    alerts.check()
    await alerts.drain()
    assert sorted(b["event"] for b in receiver.bodies) == ["breaker_open", "outbox_backlog"]


async def test_stop_sends_what_is_queued() -> None:
    receiver = Receiver()
    alerts = notifier(receiver)
    await alerts.start()
    alerts.emit(alert())
    await alerts.stop()
    assert len(receiver.bodies) == 1


async def test_a_burst_of_distinct_alerts_is_all_delivered(start: Start) -> None:
    receiver = Receiver()
    alerts = await start(receiver, max_per_minute=1000)
    await deliver(alerts, *(alert(f"error_rate:g{i}") for i in range(50)))
    assert len(receiver.bodies) == 50


def test_the_webhook_url_is_a_secret() -> None:
    settings = AlertsConfig.model_validate({"webhooks": [{"url": HOOK}]})
    assert "secret-path" not in repr(settings)
    assert "secret-path" not in str(settings)
    with pytest.raises(ValueError, match="http"):
        AlertsConfig.model_validate({"webhooks": [{"url": "ftp://x"}]})


# -- the limits stage's budget hook ------------------------------------------------------


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path):
        yield governed


HELLO = [{"role": "user", "content": "hello"}]  # 1 prompt + 1 completion token: 3 USD


async def test_the_limits_stage_reports_each_budget_after_settling(gov: Governed) -> None:
    seen: list[BudgetSpend] = []
    gov.governance.limits.watch_budgets(seen.append)
    team = await gov.admin("PUT", "/admin/teams/ops", {"budget": {"max_usd": 1000}})
    assert team.status_code == 201, team.text
    key = await gov.new_key(team="ops", budget={"max_usd": 10, "hard": False})
    client = gov.sdk(key)
    for _ in range(3):
        await client.chat.completions.create(model="test/echo", messages=HELLO, max_tokens=1)
    by_kind = {(s.kind, s.spent_usd) for s in seen}
    assert by_kind == {
        ("key", 3.0),
        ("key", 6.0),
        ("key", 9.0),
        ("team", 3.0),
        ("team", 6.0),
        ("team", 9.0),
    }
    last_key, last_team = [s for s in seen if s.kind == "key"][-1], seen[-1]
    assert last_key.max_usd == 10
    assert not last_key.hard
    # A hard budget reserves far more than a call costs: the spend is what settled.
    assert last_team.kind == "team"
    assert last_team.hard
    assert last_team.subject == "ops"
    assert last_key.label == period_window("month", gov.clock.now)[0]


async def test_a_failing_budget_watcher_never_reaches_the_caller(gov: Governed) -> None:
    def broken(spend: BudgetSpend) -> None:
        raise RuntimeError("watcher bug")

    gov.governance.limits.watch_budgets(broken)
    key = await gov.new_key(budget={"max_usd": 10, "hard": False})
    reply = await gov.sdk(key).chat.completions.create(model="test/echo", messages=HELLO)
    assert reply.choices[0].message.content == "hello"


async def test_the_shared_claim_is_won_once_per_key_and_hold(gov: Governed) -> None:
    claim = gov.governance.claim_once
    assert await claim("alert:budget:x:80", 3600)
    assert not await claim("alert:budget:x:80", 3600)
    assert await claim("alert:budget:x:100", 3600)
    gov.clock.advance(3601)
    assert await claim("alert:budget:x:80", 3600)
