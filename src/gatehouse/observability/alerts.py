"""Webhook alerts: the rules of :mod:`~gatehouse.observability.alert_rules`, fed and delivered.

Sources:

- every finished request (:meth:`AlertNotifier.request_done`, an observer
  beside the metrics and the access log): error-rate spikes per model group;
- every settled budget (:meth:`AlertNotifier.budget_spent`, called by the
  limits stage): budget thresholds;
- a look every ``check_interval_seconds`` at the deployments' breakers and the
  outbox backlog.

Nothing here runs on a request's path but a rule's arithmetic and a
``put_nowait``: an alert goes to a bounded queue, a background task
deduplicates it (in this process, then, when a claim function is given, across
replicas through the shared counter store), spends a token of each webhook's
bucket and hands it to that webhook's own delivery task, which retries 429,
5xx, timeouts and connection errors with exponential backoff. What cannot be
sent is counted in ``gatehouse_alerts_total{outcome=...}`` and logged, never
raised. The webhook's URL is a secret and is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Literal, get_args

import httpx
import orjson
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gatehouse.core.config import AlertKind, AlertsConfig, WebhookConfig
from gatehouse.core.ids import Clock
from gatehouse.core.observation import FinishedRequestsOnly, RequestRecord
from gatehouse.core.records import BudgetSpend
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

log = logging.getLogger("gatehouse.alerts")

Outcome = Literal["sent", "failed", "deduplicated", "rate_limited", "dropped"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
ALERT_KINDS: tuple[AlertKind, ...] = get_args(AlertKind)
# (key, seconds) -> whether this caller is the first to claim key in that time.
ClaimOnce = Callable[[str, float], Awaitable[bool]]
MAX_BACKOFF = 30.0


class _Webhook:
    def __init__(self, index: int, config: WebhookConfig, per_minute: float, now: float) -> None:
        self.name = f"alerts.webhooks[{index}]"  # the URL is a secret: this names it in logs
        self.url = config.url.get_secret_value()
        self.events = frozenset(config.events)
        self.render = slack_payload if config.format == "slack" else json_payload
        self.headers = {
            "content-type": "application/json",
            **{name: value.get_secret_value() for name, value in config.headers.items()},
        }
        self.bucket = TokenBucket(per_minute, now)
        self.queue: asyncio.Queue[Alert] | None = None


class AlertNotifier(FinishedRequestsOnly):
    """Decides, deduplicates, rate-limits and delivers alerts to the configured webhooks.

    ``clock`` gives epoch seconds. Start and stop it with the application.
    """

    def __init__(
        self,
        config: AlertsConfig,
        *,
        clock: Clock = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: float = 0.5,
    ) -> None:
        self._config = config
        self._clock = clock
        self._claim_once: ClaimOnce | None = None
        self._transport = transport
        self._backoff = backoff
        self.instance = config.instance or socket.gethostname()
        now = clock()
        self._hooks = [
            _Webhook(i, hook, config.max_per_minute, now) for i, hook in enumerate(config.webhooks)
        ]
        self._wanted = frozenset(kind for hook in self._hooks for kind in hook.events)
        self._budgets = BudgetThresholds(config.budget.thresholds)
        rate = config.error_rate
        self._errors = ErrorRate(rate.threshold, rate.window_seconds, rate.min_requests)
        self._breakers = BreakerOpenings()
        self._backlog = Backlog(config.outbox_backlog.threshold)
        self._dedupe = Deduper(config.dedupe_seconds)
        self._breaker_counts: Callable[[], Iterable[BreakerCount]] | None = None
        self._backlog_count: Callable[[], int] | None = None
        self._intake: asyncio.Queue[Alert] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None
        self.counts: Counter[tuple[AlertKind, Outcome]] = Counter()

    def dedupe_with(self, claim_once: ClaimOnce) -> None:
        """Deduplicate across replicas too: an alert is sent only by the replica
        whose ``claim_once`` (on the shared counter store) wins. Without it,
        deduplication holds in this process only."""
        self._claim_once = claim_once

    # -- sources -------------------------------------------------------------

    def watch_breakers(self, counts: Callable[[], Iterable[BreakerCount]]) -> None:
        """Read the deployments' breaker openings every ``check_interval_seconds``."""
        self._breaker_counts = counts

    def watch_backlog(self, backlog: Callable[[], int]) -> None:
        """Read the outbox backlog every ``check_interval_seconds``."""
        self._backlog_count = backlog

    def budget_spent(self, spend: BudgetSpend) -> None:
        """A call charged to a budget settled (the limits stage's budget watcher)."""
        if "budget" in self._wanted:
            self.emit(self._budgets.check(spend, self._clock()))

    def request_done(self, record: RequestRecord) -> None:
        """An observer of finished requests: error rates per model group."""
        if record.group is not None and "error_rate" in self._wanted:
            self.emit(self._errors.observe(record.group, is_failure(record), self._clock()))

    def check(self) -> None:
        """Look at the breakers and the backlog now (the periodic task calls this)."""
        now = self._clock()
        if self._breaker_counts is not None and "breaker_open" in self._wanted:
            for alert in self._breakers.check(self._breaker_counts(), now):
                self.emit(alert)
        if self._backlog_count is not None and "outbox_backlog" in self._wanted:
            self.emit(self._backlog.check(self._backlog_count(), now))

    # -- the queue -------------------------------------------------------------

    def emit(self, alert: Alert | None) -> None:
        """Queue ``alert`` for delivery unless a copy was queued within its hold.
        Never blocks and never raises."""
        if alert is None or alert.kind not in self._wanted:
            return
        if not self._dedupe.first(alert, self._clock()):
            self.counts[alert.kind, "deduplicated"] += 1
            return
        if self._intake is None:
            self._intake = asyncio.Queue(self._config.queue_size)
        try:
            self._intake.put_nowait(alert)
        except asyncio.QueueFull:
            self.counts[alert.kind, "dropped"] += 1
            log.warning("alert queue full: dropped %s alert %s", alert.kind, alert.dedupe_key)

    async def start(self) -> None:
        if self._tasks or not self._hooks:
            return
        if self._intake is None:
            self._intake = asyncio.Queue(self._config.queue_size)
        self._http = httpx.AsyncClient(
            timeout=self._config.timeout_seconds, transport=self._transport
        )
        for hook in self._hooks:
            hook.queue = asyncio.Queue(self._config.queue_size)
            self._tasks.append(asyncio.create_task(self._deliver(hook), name="gatehouse-alerts"))
        self._tasks.append(asyncio.create_task(self._dispatch(), name="gatehouse-alerts"))
        self._tasks.append(asyncio.create_task(self._watch(), name="gatehouse-alerts"))

    async def stop(self) -> None:
        """Send what is queued (for at most ``timeout_seconds``), then stop."""
        if not self._tasks:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), self._config.timeout_seconds)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def drain(self) -> None:
        """Wait until every queued alert was sent, dropped or given up on."""
        if self._intake is not None:
            await self._intake.join()
        for hook in self._hooks:
            if hook.queue is not None:
                await hook.queue.join()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._config.check_interval_seconds)
            try:
                self.check()
            except Exception:
                log.exception("checking breakers and the outbox backlog for alerts failed")

    async def _dispatch(self) -> None:
        assert self._intake is not None
        while True:
            alert = await self._intake.get()
            try:
                if await self._first_everywhere(alert):
                    self._route(alert)
                else:
                    self.counts[alert.kind, "deduplicated"] += 1
            except Exception:
                log.exception("dispatching %s alert failed", alert.kind)
                self.counts[alert.kind, "failed"] += 1
            finally:
                self._intake.task_done()

    async def _first_everywhere(self, alert: Alert) -> bool:
        if self._claim_once is None:
            return True
        try:
            return await self._claim_once(f"alert:{alert.dedupe_key}", self._dedupe.hold_for(alert))
        except Exception as exc:
            # Better a duplicate than a lost alert.
            log.warning("cannot deduplicate alerts across replicas (%s): sending", exc)
            return True

    def _route(self, alert: Alert) -> None:
        now = self._clock()
        for hook in self._hooks:
            if alert.kind not in hook.events or hook.queue is None:
                continue
            if not hook.bucket.take(now):
                self.counts[alert.kind, "rate_limited"] += 1
                log.warning("%s: rate limit reached, %s alert not sent", hook.name, alert.kind)
                continue
            try:
                hook.queue.put_nowait(alert)
            except asyncio.QueueFull:
                self.counts[alert.kind, "dropped"] += 1
                log.warning("%s: queue full, %s alert dropped", hook.name, alert.kind)

    async def _deliver(self, hook: _Webhook) -> None:
        assert hook.queue is not None
        while True:
            alert = await hook.queue.get()
            try:
                sent = await self._post(hook, alert)
                self.counts[alert.kind, "sent" if sent else "failed"] += 1
            except Exception:
                log.exception("%s: delivering a %s alert failed", hook.name, alert.kind)
                self.counts[alert.kind, "failed"] += 1
            finally:
                hook.queue.task_done()

    async def _post(self, hook: _Webhook, alert: Alert) -> bool:
        assert self._http is not None
        body = orjson.dumps(hook.render(alert, self.instance))
        attempts = self._config.max_retries + 1
        for attempt in range(attempts):
            retry_after = None
            try:
                response = await self._http.post(hook.url, content=body, headers=hook.headers)
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            else:
                if response.is_success:
                    return True
                reason = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    log.warning("%s refused a %s alert: %s", hook.name, alert.kind, reason)
                    return False
                retry_after = _seconds(response.headers.get("retry-after"))
            if attempt + 1 < attempts:
                delay = retry_after if retry_after is not None else self._backoff * 2**attempt
                await asyncio.sleep(min(delay, MAX_BACKOFF))
        log.warning(
            "%s: %s alert not delivered after %d attempts: %s",
            hook.name,
            alert.kind,
            attempts,
            reason,
        )
        return False

    def collector(self) -> Collector:
        """``gatehouse_alerts_total{event, outcome}`` for ``/metrics``."""
        return _AlertCollector(self.counts)


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else max(float(value), 0.0)
    except ValueError:
        return None


class _AlertCollector(Collector):
    def __init__(self, counts: Counter[tuple[AlertKind, Outcome]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "gatehouse_alerts",
            "Alerts by event and outcome: sent, failed (delivery gave up), "
            "deduplicated, rate_limited or dropped (a queue was full).",
            labels=["event", "outcome"],
        )
        for kind in ALERT_KINDS:
            for outcome in OUTCOMES:
                family.add_metric([kind, outcome], self._counts[kind, outcome])
        yield family
