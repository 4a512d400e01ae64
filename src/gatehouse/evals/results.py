"""What an evaluation run produces: typed, saved as JSON, read back by ``eval compare``.

A run is a list of items (a question, a capability test), each with named
scores. A score is a number in 0..1 or ``None`` with the reason: ``failed``
when the judge or the model could not produce it (counted as failures), not
failed when the metric does not apply (no reference answer, no citation).
The summary's mean is over the scored items only, and says how many failed
or were skipped, so a judge that failed on half the items cannot pass for
a model that scored 0 on them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from gatehouse.core.errors import ValidationFailedError

SCHEMA_VERSION = 1
RunKind = Literal["answers", "capabilities"]


class Score(BaseModel):
    value: float | None
    reason: str | None = None
    failed: bool = False

    @classmethod
    def of(cls, value: float | None, reason: str | None = None, *, failed: bool = False) -> Score:
        if value is not None and not math.isfinite(value):
            return cls(value=None, reason="not a finite number", failed=True)
        return cls(value=value, reason=None if value is not None else reason, failed=failed)


class ItemResult(BaseModel):
    """One question or test, with what the model said and the scores."""

    id: str
    group: str = ""
    input: str
    output: str | None = None
    expected: str | None = None
    scores: dict[str, Score] = Field(default_factory=dict)
    latency_ms: list[float] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class MetricSummary(BaseModel):
    mean: float | None
    scored: int
    failed: int
    skipped: int


class LatencySummary(BaseModel):
    count: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


class EvalRun(BaseModel):
    """One evaluation run: settings, per-item results, summaries."""

    schema_version: int = SCHEMA_VERSION
    kind: RunKind
    name: str
    created_at: str
    settings: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    metrics: list[str]
    summary: dict[str, MetricSummary] = Field(default_factory=dict)
    groups: dict[str, dict[str, MetricSummary]] = Field(default_factory=dict)
    latency: LatencySummary | None = None
    usage: dict[str, int] = Field(default_factory=dict)
    items: list[ItemResult]

    def summarise(self) -> EvalRun:
        """A copy whose summary and latency are computed from the items."""
        summary = {m: summarise([i.scores.get(m) for i in self.items]) for m in self.metrics}
        groups = {
            group: {
                m: summarise([i.scores.get(m) for i in self.items if i.group == group])
                for m in self.metrics
            }
            for group in dict.fromkeys(i.group for i in self.items if i.group)
        }
        latencies = [ms for item in self.items for ms in item.latency_ms]
        return self.model_copy(
            update={"summary": summary, "groups": groups, "latency": latency_summary(latencies)}
        )


def summarise(scores: Iterable[Score | None]) -> MetricSummary:
    values: list[float] = []
    failed = skipped = 0
    for score in scores:
        if score is None or (score.value is None and not score.failed):
            skipped += 1
        elif score.value is None:
            failed += 1
        else:
            values.append(score.value)
    mean = sum(values) / len(values) if values else None
    return MetricSummary(mean=mean, scored=len(values), failed=failed, skipped=skipped)


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies: Sequence[float]) -> LatencySummary | None:
    if not latencies:
        return None
    return LatencySummary(
        count=len(latencies),
        p50_ms=percentile(latencies, 0.5),
        p95_ms=percentile(latencies, 0.95),
        max_ms=max(latencies),
    )


def write_run(run: EvalRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run.model_dump_json(indent=2) + "\n", encoding="utf-8")


def read_run(path: Path) -> EvalRun:
    """A run saved by :func:`write_run`; a missing or foreign file is one clear error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationFailedError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailedError(f"{path}: cannot read: {exc}") from None
    try:
        return EvalRun.model_validate_json(text)
    except ValueError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid"
        raise ValidationFailedError(
            f"{path}: not a gatehouse eval run (the JSON an eval writes): {first}"
        ) from None
