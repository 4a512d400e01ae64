"""Governance figures for Prometheus, read at scrape time.

Failures of the shared counter store, of ledger shipping and of the
revocation poll are never silent: they are logged where they happen and
counted here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# name -> help; the snapshot returns a value for each name of both.
GOVERNANCE_COUNTERS = {
    "gatehouse_counter_store_failures": "Admissions or settlements the counter store failed.",
    "gatehouse_soft_budget_alerts": "Requests admitted past a soft budget.",
    "gatehouse_ledger_shipped_events": "Usage events shipped from the outbox to the ledger.",
    "gatehouse_ledger_ship_failures": "Failed attempts to ship usage events to the ledger.",
    "gatehouse_revocation_poll_failures": "Failed polls of the key revision.",
}
GOVERNANCE_GAUGES = {
    "gatehouse_outbox_backlog": "Usage events in the outbox not yet shipped to the ledger.",
}


class GovernanceCollector(Collector):
    def __init__(self, snapshot: Callable[[], Mapping[str, float]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        values = self._snapshot()
        for name, text in GOVERNANCE_COUNTERS.items():
            family = CounterMetricFamily(name, text)
            family.add_metric([], values.get(name, 0.0))
            yield family
        for name, text in GOVERNANCE_GAUGES.items():
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], values.get(name, 0.0))
            yield gauge
