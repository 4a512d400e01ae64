"""What deserves an alert, decided without I/O: thresholds, windows, dedupe, rate limits.

Every rule takes the time as an argument, so tests drive it without sleeping.
:mod:`gatehouse.observability.alerts` feeds the rules from the gateway and
delivers what they return.

- :class:`BudgetThresholds`: a budget's spend crossed 50, 80 or 100 % (the
  configured thresholds), once per budget period and subject.
- :class:`ErrorRate`: the failed share of a model group's requests over a
  sliding window reached the threshold; it fires again only after the rate
  fell back below it.
- :class:`BreakerOpenings`: a deployment's circuit breaker opened.
- :class:`Backlog`: the outbox holds more usage events than the threshold.
- :class:`Deduper` and :class:`TokenBucket`: the same alert once per window;
  at most so many a minute per webhook.

Payloads (:func:`json_payload`, :func:`slack_payload`) carry ids (key id,
team, group, deployment) and figures, never a key's secret or any prompt text.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from gatehouse.core.config import AlertKind
from gatehouse.core.observation import RequestRecord
from gatehouse.core.records import BudgetSpend

Severity = Literal["info", "warning", "critical"]
Value = float | int | str

# Subjects name what an alert is about; ids only.
_BUDGET_SUBJECT = {"key": "key_id", "user": "user", "team": "team", "org": "org"}
# A budget alert's claim outlives its period by this much, so a clock a little
# behind on another replica cannot fire it again.
_PERIOD_MARGIN = 3600.0


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. ``dedupe_key`` names the event and its subject; the alert is sent
    once while that key is held: ``hold`` seconds, ``None`` for the configured
    ``dedupe_seconds``, 0 for ever."""

    kind: AlertKind
    severity: Severity
    summary: str  # one line for people
    subject: Mapping[str, str]
    values: Mapping[str, Value]
    at: float  # epoch seconds
    dedupe_key: str
    hold: float | None = None


# -- budgets ------------------------------------------------------------------


class BudgetThresholds:
    """The highest threshold a spend has reached that this process has not yet
    reported for that budget and period. A jump past several thresholds reports
    the highest only. The shared claim (``Alert.hold`` until the period ends)
    keeps other replicas from reporting it again."""

    def __init__(self, thresholds: Iterable[float]) -> None:
        self._thresholds = sorted(thresholds)
        self._lowest = self._thresholds[0]
        # (kind, subject, period, label) -> the highest threshold reported
        self._reported: dict[tuple[str, str, str, str], float] = {}

    def check(self, spend: BudgetSpend, now: float) -> Alert | None:
        if spend.max_usd <= 0 or spend.spent_usd * 100 < self._lowest * spend.max_usd:
            return None
        reached = [t for t in self._thresholds if spend.spent_usd * 100 >= t * spend.max_usd]
        where = (spend.kind, spend.subject, spend.period, spend.label)
        threshold = reached[-1]
        if self._reported.get(where, -1.0) >= threshold:
            return None
        if len(self._reported) > 100_000:
            self._reported.clear()  # the shared claims still hold
        self._reported[where] = threshold
        percent = 100 * spend.spent_usd / spend.max_usd
        who = f"{spend.kind} {spend.subject}"
        # Held until the period ends ("total" never does: 0, for ever).
        hold = 0.0 if math.isinf(spend.ends_at) else max(spend.ends_at - now, 0) + _PERIOD_MARGIN
        return Alert(
            kind="budget",
            severity=_budget_severity(threshold),
            summary=(
                f"Budget of {who} at {percent:.0f}% ({spend.spent_usd:.4f} of "
                f"{spend.max_usd:.4f} USD, {spend.period} {spend.label})"
            ),
            subject={_BUDGET_SUBJECT[spend.kind]: spend.subject},
            values={
                "threshold_percent": int(threshold) if threshold == int(threshold) else threshold,
                "spent_percent": round(percent, 3),
                "spent_usd": round(spend.spent_usd, 9),
                "max_usd": spend.max_usd,
                "period": spend.period,
                "period_label": spend.label,
                "hard": "yes" if spend.hard else "no",
            },
            at=now,
            dedupe_key=f"budget:{spend.kind}:{spend.subject}:{spend.period}:{spend.label}:"
            f"{threshold:g}",
            hold=hold,
        )


def _budget_severity(threshold: float) -> Severity:
    if threshold >= 100:
        return "critical"
    return "warning" if threshold >= 80 else "info"


# -- error rate ---------------------------------------------------------------

# Upstream failures the caller could not avoid; a client's bad request, a
# refusal by the gateway's own limits or a client hanging up is not one.
_FAILURE_TYPES = frozenset({"rate_limit", "timeout", "connection", "server", "auth"})
_BUCKETS = 20  # the window in this many slices: slides in steps of window / 20


def is_failure(record: RequestRecord) -> bool:
    if record.refusal is not None or record.status == 499:
        return False
    return record.status >= 500 or record.error_type in _FAILURE_TYPES


@dataclass(slots=True)
class _Window:
    buckets: deque[list[int]] = field(default_factory=deque)  # [slice, requests, failures]
    requests: int = 0
    failures: int = 0
    firing: bool = False


class ErrorRate:
    """Failed share of each model group's requests over a sliding window."""

    def __init__(self, threshold: float, window: float, min_requests: int) -> None:
        self._threshold = threshold
        self._window = window
        self._slice = window / _BUCKETS
        self._min_requests = min_requests
        self._groups: dict[str, _Window] = {}

    def observe(self, group: str, failed: bool, now: float) -> Alert | None:
        window = self._groups.get(group)
        if window is None:
            window = self._groups[group] = _Window()
        current = int(now // self._slice)
        buckets = window.buckets
        while buckets and buckets[0][0] <= current - _BUCKETS:
            _, requests, failures = buckets.popleft()
            window.requests -= requests
            window.failures -= failures
        if not buckets or buckets[-1][0] != current:
            buckets.append([current, 0, 0])
        last = buckets[-1]
        last[1] += 1
        window.requests += 1
        if failed:
            last[2] += 1
            window.failures += 1
        rate = window.failures / window.requests
        if rate < self._threshold:
            window.firing = False
            return None
        if window.firing or window.requests < self._min_requests:
            return None
        window.firing = True
        return Alert(
            kind="error_rate",
            severity="critical",
            summary=(
                f"Model group {group}: {rate:.0%} of {window.requests} requests failed "
                f"in the last {self._window:g}s"
            ),
            subject={"group": group},
            values={
                "error_rate": round(rate, 4),
                "failures": window.failures,
                "requests": window.requests,
                "window_seconds": self._window,
                "threshold": self._threshold,
            },
            at=now,
            dedupe_key=f"error_rate:{group}",
        )


# -- breakers and backlog ---------------------------------------------------------


class BreakerCount(NamedTuple):
    """How many times a deployment's breaker has opened since start."""

    group: str
    deployment: str
    openings: int


class BreakerOpenings:
    """An alert for each deployment whose breaker opened since the last look."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def check(self, counts: Iterable[BreakerCount], now: float) -> list[Alert]:
        alerts = []
        for count in counts:
            before = self._seen.get(count.deployment, 0)
            self._seen[count.deployment] = count.openings
            if count.openings > before:
                alerts.append(
                    Alert(
                        kind="breaker_open",
                        severity="warning",
                        summary=(
                            f"Circuit breaker of deployment {count.deployment} "
                            f"(group {count.group}) opened: it gets no traffic until "
                            "a probe succeeds"
                        ),
                        subject={"group": count.group, "deployment": count.deployment},
                        values={"openings": count.openings},
                        at=now,
                        dedupe_key=f"breaker_open:{count.deployment}",
                    )
                )
        return alerts


class Backlog:
    """Fires when the outbox backlog reaches the threshold; again only after it
    fell below."""

    def __init__(self, threshold: int) -> None:
        self._threshold = threshold
        self._firing = False

    def check(self, backlog: int, now: float) -> Alert | None:
        if backlog < self._threshold:
            self._firing = False
            return None
        if self._firing:
            return None
        self._firing = True
        return Alert(
            kind="outbox_backlog",
            severity="warning",
            summary=(
                f"{backlog} usage events wait in the outbox (threshold {self._threshold}): "
                "the ledger database is slow or unreachable"
            ),
            subject={},
            values={"backlog": backlog, "threshold": self._threshold},
            at=now,
            dedupe_key="outbox_backlog",
        )


# -- dedupe and rate limit -----------------------------------------------------------


class Deduper:
    """The first of equal keys within their hold passes; later ones do not."""

    def __init__(self, hold: float) -> None:
        self._hold = hold
        self._until: dict[str, float] = {}

    def hold_for(self, alert: Alert) -> float:
        """Seconds ``alert``'s key is held; 0 for ever."""
        return self._hold if alert.hold is None else alert.hold

    def first(self, alert: Alert, now: float) -> bool:
        until = self._until.get(alert.dedupe_key)
        if until is not None and now < until:
            return False
        hold = self.hold_for(alert)
        if len(self._until) > 10_000:
            self._until = {k: t for k, t in self._until.items() if t > now}
        self._until[alert.dedupe_key] = math.inf if hold == 0 else now + hold
        return True


class TokenBucket:
    """``per_minute`` tokens a minute, holding at most that many (the burst)."""

    def __init__(self, per_minute: float, now: float) -> None:
        self._rate = per_minute / 60.0
        self._capacity = max(per_minute, 1.0)
        self._tokens = self._capacity
        self._at = now

    def take(self, now: float) -> bool:
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = max(self._at, now)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


# -- payloads ------------------------------------------------------------------


def _timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def json_payload(alert: Alert, instance: str) -> dict[str, Any]:
    """The generic payload: one JSON object per alert."""
    return {
        "source": "gatehouse",
        "event": alert.kind,
        "severity": alert.severity,
        "summary": alert.summary,
        "subject": dict(alert.subject),
        "values": dict(alert.values),
        "timestamp": _timestamp(alert.at),
        "instance": instance,
    }


_SLACK_ICONS = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}
_SLACK_TITLES = {
    "budget": "Budget threshold",
    "error_rate": "Error-rate spike",
    "breaker_open": "Circuit breaker open",
    "outbox_backlog": "Outbox backlog",
}


def _escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert, instance: str) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` for notifications, ``blocks``
    for the channel (a header, the summary with up to ten fields, the context)."""
    title = f"{_SLACK_TITLES[alert.kind]} ({alert.severity})"
    facts = [*alert.subject.items(), *alert.values.items()][:10]
    return {
        "text": f"{_SLACK_ICONS[alert.severity]} gatehouse: {_escape(alert.summary)}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _escape(alert.summary)[:3000]},
                **(
                    {
                        "fields": [
                            {"type": "mrkdwn", "text": f"*{name}*\n{_escape(str(value))}"[:2000]}
                            for name, value in facts
                        ]
                    }
                    if facts
                    else {}
                ),
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{_escape(instance)} · {_timestamp(alert.at)} · {alert.kind}",
                    }
                ],
            },
        ],
    }
