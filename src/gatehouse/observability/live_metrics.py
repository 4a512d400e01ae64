"""What /metrics reads from memory at scrape time: deployment state, readiness,
counts kept elsewhere. Costs the request path nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class DeploymentState:
    """What the scrape-time collector reads for one deployment."""

    def __init__(
        self,
        deployment: str,
        group: str,
        in_flight: int,
        breaker: str,
        admission_limit: int,
        queued: int,
        rejected: int,
        latency_s: float | None,
    ) -> None:
        self.deployment = deployment
        self.group = group
        self.in_flight = in_flight
        self.breaker = breaker
        self.admission_limit = admission_limit
        self.queued = queued
        self.rejected = rejected
        self.latency_s = latency_s


class ReadCounter(Collector):
    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self._name = name
        self._documentation = documentation
        self._read = read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation)
        family.add_metric([], self._read())
        yield family


class Readiness(Collector):
    """The last readiness verdict: nothing until ``/readyz`` first runs."""

    def __init__(self) -> None:
        self.checks: list[tuple[str, bool]] | None = None

    def collect(self) -> Iterator[Metric]:
        checks = self.checks
        if checks is None:
            return
        ready = GaugeMetricFamily(
            "gatehouse_ready", "1 when the last /readyz found every dependency ready, else 0."
        )
        ready.add_metric([], float(all(ok for _, ok in checks)))
        each = GaugeMetricFamily(
            "gatehouse_readiness_check",
            "Each check of the last /readyz: 1 ok, 0 failed or timed out.",
            labels=["check"],
        )
        for name, ok in checks:
            each.add_metric([name], float(ok))
        yield ready
        yield each


_BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class DeploymentCollector(Collector):
    def __init__(self, snapshot: Callable[[], Iterable[DeploymentState]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        labels = ["deployment", "group"]
        in_flight = GaugeMetricFamily(
            "gatehouse_deployment_in_flight", "Requests in flight to a deployment.", labels=labels
        )
        breaker = GaugeMetricFamily(
            "gatehouse_deployment_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open.",
            labels=labels,
        )
        limit = GaugeMetricFamily(
            "gatehouse_admission_limit",
            "In-flight limit from Little's law (target rate x latency x headroom).",
            labels=labels,
        )
        queued = GaugeMetricFamily(
            "gatehouse_admission_queue_length", "Requests waiting for admission.", labels=labels
        )
        rejected = GaugeMetricFamily(
            "gatehouse_admission_rejected",
            "Requests refused by admission control since start.",
            labels=labels,
        )
        latency = GaugeMetricFamily(
            "gatehouse_deployment_latency_seconds",
            "Moving average of a deployment's latency.",
            labels=labels,
        )
        for state in self._snapshot():
            values = [state.deployment, state.group]
            in_flight.add_metric(values, state.in_flight)
            breaker.add_metric(values, _BREAKER_VALUES.get(state.breaker, 0.0))
            limit.add_metric(values, state.admission_limit)
            queued.add_metric(values, state.queued)
            rejected.add_metric(values, state.rejected)
            if state.latency_s is not None:
                latency.add_metric(values, state.latency_s)
        yield from (in_flight, breaker, limit, queued, rejected, latency)
