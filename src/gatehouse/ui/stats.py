"""The overview's numbers from request-log events: totals, percentiles, buckets. Pure."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gatehouse.core.records import UsageEvent


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cache_hits: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def cache_hit_ratio(self) -> float | None:
        return self.cache_hits / self.requests if self.requests else None

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(slots=True)
class Bucket:
    """One time bucket (or one group) of events."""

    label: str
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, event: UsageEvent) -> None:
        self.requests += 1
        self.errors += event.status != "ok"
        self.tokens += event.prompt_tokens + event.completion_tokens
        self.cost_usd += event.cost_usd
        self.latencies.append(event.latency_ms)

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies, 95) or 0.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile; ``None`` of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def totals(events: Sequence[UsageEvent]) -> Totals:
    latencies = [e.latency_ms for e in events]
    return Totals(
        requests=len(events),
        errors=sum(e.status != "ok" for e in events),
        prompt_tokens=sum(e.prompt_tokens for e in events),
        completion_tokens=sum(e.completion_tokens for e in events),
        cost_usd=sum(e.cost_usd for e in events),
        cache_hits=sum(e.cache_hit for e in events),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
    )


def over_time(
    events: Iterable[UsageEvent], *, start: float, end: float, step: float
) -> list[Bucket]:
    """Events in equal buckets of ``step`` seconds from ``start`` to ``end``, empty
    buckets included, labelled by their start (UTC, HH:MM)."""
    count = max(1, math.ceil((end - start) / step))
    buckets = [Bucket(_label(start + i * step, step)) for i in range(count)]
    for event in events:
        index = int((event.created_at - start) // step)
        if 0 <= index < count:
            buckets[index].add(event)
    return buckets


def _label(moment: float, step: float) -> str:
    when = datetime.fromtimestamp(moment, UTC)
    return when.strftime("%H:%M") if step < 86400 else when.strftime("%m-%d")


def grouped(events: Iterable[UsageEvent], by: str, *, top: int = 10) -> list[Bucket]:
    """Events grouped by ``by`` (``model``, ``team``, ``key_id``, ``deployment``),
    highest spend first, then most requests; at most ``top`` groups."""
    groups: dict[str, Bucket] = defaultdict(lambda: Bucket(""))
    for event in events:
        value = getattr(event, by) or "(none)"
        bucket = groups[value]
        bucket.label = value
        bucket.add(event)
    ordered = sorted(groups.values(), key=lambda b: (-b.cost_usd, -b.requests, b.label))
    return ordered[:top]
