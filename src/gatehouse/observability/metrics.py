"""Prometheus metrics, one registry per application (never the global default).

Per-request figures are counters and histograms updated on the way; the live
state of deployments (in flight, breaker, admission limit and queue) is read
only when Prometheus scrapes, so it costs the hot path nothing.

Labels are bounded: endpoint, model group, deployment, team, a status or an
error type from a closed vocabulary. Never a user id, a key or any text of a
request. The ``model`` label of the request metrics is the name the client
asked for when it names a model this gateway serves (see :meth:`Metrics.name_models`),
else ``unknown``: a caller must not be able to add series by inventing names.
Series per virtual key (its public id, never the secret) are opt-in
(``observability.metrics.per_key``): there are as many as keys.

Under several worker processes the counters and histograms are added up over
all of them at each scrape (:mod:`gatehouse.observability.multiprocess`).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gatehouse.core.errors import ErrorType
from gatehouse.core.observation import RequestRecord
from gatehouse.observability import multiprocess
from gatehouse.observability.live_metrics import (
    DeploymentCollector,
    DeploymentState,
    ReadCounter,
    Readiness,
)
from gatehouse.observability.rag_metrics import RagMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN_MODEL = "unknown"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The gateway's observer (and the RAG engine's, as :attr:`rag`), exported by :meth:`render`.

    ``registry`` holds what is read at scrape time (:meth:`watch_counter`,
    :meth:`watch_deployments`, ``registry.register``); ``per_key`` adds the
    per-key series.
    """

    def __init__(self, *, per_key: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Under multiprocess mode the counters' values live in files that
        # ``_shared`` reads for every worker at once; their own registry is
        # then never rendered (it would report this worker's share again).
        self._shared: CollectorRegistry | None = None
        counters = self.registry
        if multiprocess.active():
            self._shared = multiprocess.shared_registry()
            counters = CollectorRegistry()
        self._init_counters(counters)
        self.rag = RagMetrics(counters)
        self._per_key = _PerKey(counters) if per_key else None
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._attempt_children: dict[tuple[str, str], Counter] = {}
        self._served: dict[tuple[str | None, str | None, str | None], _Served] = {}
        self._upstream_children: dict[tuple[str | None, str | None], Histogram] = {}
        self._models: Container[str] | None = None
        self._readiness = Readiness()
        self.registry.register(self._readiness)

    def _init_counters(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "gatehouse_requests_total",
            "Requests by endpoint, model and HTTP status.",
            ["endpoint", "model", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "gatehouse_request_duration_seconds",
            "Time from request to the last byte of the answer.",
            ["endpoint", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.first_token_seconds = Histogram(
            "gatehouse_time_to_first_token_seconds",
            "Time from request to the first streamed token.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.attempts = Counter(
            "gatehouse_upstream_attempts_total",
            "Calls to deployments by outcome (ok, retryable_error, client_error).",
            ["deployment", "outcome"],
            registry=registry,
        )
        self.admission_waits = Histogram(
            "gatehouse_admission_wait_seconds",
            "Time requests waited in a deployment's admission queue.",
            ["deployment"],
            buckets=_WAIT_BUCKETS,
            registry=registry,
        )
        served = ["group", "deployment", "team"]
        self.tokens = Counter(
            "gatehouse_tokens_total",
            "Tokens by type: input (cache reads and writes included), cached (cache reads), "
            "cache_write, output (reasoning included), reasoning.",
            [*served, "type"],
            registry=registry,
        )
        self.cost = Counter(
            "gatehouse_cost_usd_total",
            "Cost of requests in USD, as the ledger charges it.",
            served,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "gatehouse_upstream_errors_total",
            "Failed calls to deployments by error type "
            "(rate_limit, timeout, auth, bad_request, server, connection, content_policy, other).",
            ["group", "deployment", "type"],
            registry=registry,
        )
        self.refusals = Counter(
            "gatehouse_refusals_total",
            "Requests refused by the gateway's rate limits or budgets.",
            ["team", "reason"],
            registry=registry,
        )
        self.guard_decisions = Counter(
            "gatehouse_guard_decisions_total",
            "Requests on which a guard rule acted, by rule (entities.EMAIL, content.<name>) "
            "and action (redact, mask, block).",
            ["rule", "action"],
            registry=registry,
        )
        self.retries = Counter(
            "gatehouse_retries_total",
            "Attempts after the first within a model group.",
            ["group"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "gatehouse_fallbacks_total",
            "Requests passed from a model group to one of its fallbacks.",
            ["group"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "gatehouse_cache_lookups_total",
            "Response cache lookups by result (hit, miss).",
            ["endpoint", "result"],
            registry=registry,
        )
        self.upstream_seconds = Histogram(
            "gatehouse_upstream_duration_seconds",
            "Time spent in calls to deployments per request, summed over attempts "
            "(a stream: to its last chunk); no admission queueing or retry backoff.",
            ["group", "deployment"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def name_models(self, models: Container[str]) -> None:
        """Label requests with their model only when it is in ``models``."""
        self._models = models

    # -- the gateway's observer protocol (gatehouse.gateway.observer.Observer) --

    # Each labelled child is looked up once and kept: ``labels()`` validates
    # and joins its arguments under a lock, which showed in the hot path.

    def request_done(self, record: RequestRecord) -> None:
        endpoint, model = record.endpoint, record.model
        if self._models is not None and model not in self._models:
            model = UNKNOWN_MODEL
        key = (endpoint, model, record.status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(endpoint, model, str(record.status)),
                self.request_seconds.labels(endpoint, model),
            )
        children[0].inc()
        children[1].observe(record.seconds)
        if record.ttft is not None:
            self.first_token_seconds.labels(model).observe(record.ttft)
        if record.input_tokens or record.output_tokens or record.cost_usd:
            served_key = (record.group, record.deployment, record.team)
            served = self._served.get(served_key)
            if served is None:
                served = self._served[served_key] = self._bind_served(*served_key)
            served.add(record)
        if record.upstream is not None:
            upstream_key = (record.group, record.deployment)
            upstream = self._upstream_children.get(upstream_key)
            if upstream is None:
                upstream = self._upstream_children[upstream_key] = self.upstream_seconds.labels(
                    record.group or "", record.deployment or ""
                )
            upstream.observe(record.upstream)
        if self._per_key is not None and record.key_id is not None:
            self._per_key.add(record)
        if record.cache == "hit" or record.cache == "miss":
            self.cache_lookups.labels(endpoint, record.cache).inc()
        if record.refusal is not None:
            self.refusals.labels(record.team or "", record.refusal).inc()
        for rule, action in record.guard:
            self.guard_decisions.labels(rule, action).inc()

    def _bind_served(self, group: str | None, deployment: str | None, team: str | None) -> _Served:
        values = (group or "", deployment or "", team or "")
        return _Served(
            self.tokens.labels(*values, "input"),
            self.tokens.labels(*values, "cached"),
            self.tokens.labels(*values, "cache_write"),
            self.tokens.labels(*values, "output"),
            self.tokens.labels(*values, "reasoning"),
            self.cost.labels(*values),
        )

    def upstream_error(self, group: str, deployment: str, kind: ErrorType) -> None:
        self.upstream_errors.labels(group, deployment, kind).inc()

    def retry(self, group: str) -> None:
        self.retries.labels(group).inc()

    def fallback(self, group: str) -> None:
        self.fallbacks.labels(group).inc()

    def attempt(self, deployment: str, outcome: str) -> None:
        child = self._attempt_children.get((deployment, outcome))
        if child is None:
            child = self._attempt_children[(deployment, outcome)] = self.attempts.labels(
                deployment, outcome
            )
        child.inc()

    def admission_wait(self, deployment: str, seconds: float) -> None:
        self.admission_waits.labels(deployment).observe(seconds)

    def readiness(self, checks: Iterable[tuple[str, bool]]) -> None:
        """Keep the outcome of the last ``/readyz`` (check name, ok) for the scrape."""
        self._readiness.checks = list(checks)

    def watch_counter(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Export a count kept elsewhere (``name`` without ``_total``), read at scrape time."""
        self.registry.register(ReadCounter(name, documentation, read))

    def watch_deployments(self, snapshot: Callable[[], Iterable[DeploymentState]]) -> None:
        """Export live deployment state, read from ``snapshot`` at scrape time."""
        self.registry.register(DeploymentCollector(snapshot))

    def render(self) -> bytes:
        if self._shared is None:
            return generate_latest(self.registry)
        own = multiprocess.PerWorker(self.registry)
        return generate_latest(self._shared) + generate_latest(own)


class _PerKey:
    """Requests, tokens and cost by virtual key id: opt-in, one series set per key."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "gatehouse_key_requests_total",
            "Requests by virtual key id and HTTP status (opt-in: observability.metrics.per_key).",
            ["key", "status"],
            registry=registry,
        )
        self.tokens = Counter(
            "gatehouse_key_tokens_total",
            "Tokens by virtual key id and type (input, output) (opt-in).",
            ["key", "type"],
            registry=registry,
        )
        self.cost = Counter(
            "gatehouse_key_cost_usd_total",
            "Cost in USD by virtual key id (opt-in).",
            ["key"],
            registry=registry,
        )

    def add(self, record: RequestRecord) -> None:
        key = record.key_id or ""
        self.requests.labels(key, str(record.status)).inc()
        if record.input_tokens:
            self.tokens.labels(key, "input").inc(record.input_tokens)
        if record.output_tokens:
            self.tokens.labels(key, "output").inc(record.output_tokens)
        if record.cost_usd:
            self.cost.labels(key).inc(record.cost_usd)


class _Served:
    """The token and cost counters of one (group, deployment, team), bound once."""

    __slots__ = ("cache_write", "cached", "cost", "input", "output", "reasoning")

    def __init__(
        self,
        input: Counter,
        cached: Counter,
        cache_write: Counter,
        output: Counter,
        reasoning: Counter,
        cost: Counter,
    ) -> None:
        self.input = input
        self.cached = cached
        self.cache_write = cache_write
        self.output = output
        self.reasoning = reasoning
        self.cost = cost

    def add(self, record: RequestRecord) -> None:
        if record.input_tokens:
            self.input.inc(record.input_tokens)
        if record.cached_tokens:
            self.cached.inc(record.cached_tokens)
        if record.cache_write_tokens:
            self.cache_write.inc(record.cache_write_tokens)
        if record.output_tokens:
            self.output.inc(record.output_tokens)
        if record.reasoning_tokens:
            self.reasoning.inc(record.reasoning_tokens)
        if record.cost_usd:
            self.cost.inc(record.cost_usd)
