"""Two eval runs side by side: summary means and per-item score differences. Pure.

Items are matched by id. For each metric of either run the comparison gives
both means and their difference; per item it lists every metric whose value
differs (a score that exists in one run and failed or is missing in the
other counts as a difference, with ``None`` for the missing side), and the
ids found in only one run.
"""

from __future__ import annotations

from pydantic import BaseModel

from gatehouse.core.errors import ValidationFailedError
from gatehouse.evals.results import EvalRun, Score

EPSILON = 1e-12


class MetricRow(BaseModel):
    metric: str
    a: float | None
    b: float | None
    delta: float | None
    a_failed: int
    b_failed: int


class ItemDifference(BaseModel):
    id: str
    metric: str
    a: float | None
    b: float | None
    delta: float | None


class Comparison(BaseModel):
    a: str
    b: str
    kind: str
    metrics: list[MetricRow]
    differences: list[ItemDifference]
    only_in_a: list[str]
    only_in_b: list[str]
    same_items: int


def compare(a: EvalRun, b: EvalRun, *, a_label: str = "A", b_label: str = "B") -> Comparison:
    """The comparison of ``a`` with ``b``; runs of different kinds cannot be compared."""
    if a.kind != b.kind:
        raise ValidationFailedError(
            f"cannot compare a run of 'eval {a.kind}' ({a_label}) with one of "
            f"'eval {b.kind}' ({b_label})"
        )
    metrics = list(dict.fromkeys([*a.metrics, *b.metrics]))
    rows = []
    for metric in metrics:
        sa, sb = a.summary.get(metric), b.summary.get(metric)
        mean_a = sa.mean if sa else None
        mean_b = sb.mean if sb else None
        rows.append(
            MetricRow(
                metric=metric,
                a=mean_a,
                b=mean_b,
                delta=_delta(mean_a, mean_b),
                a_failed=sa.failed if sa else 0,
                b_failed=sb.failed if sb else 0,
            )
        )
    items_a = {item.id: item for item in a.items}
    items_b = {item.id: item for item in b.items}
    differences = []
    same = 0
    for ident, item_a in items_a.items():
        item_b = items_b.get(ident)
        if item_b is None:
            continue
        changed = False
        for metric in metrics:
            va = _value(item_a.scores.get(metric))
            vb = _value(item_b.scores.get(metric))
            if _differs(va, vb):
                changed = True
                differences.append(
                    ItemDifference(id=ident, metric=metric, a=va, b=vb, delta=_delta(va, vb))
                )
        same += not changed
    return Comparison(
        a=a_label,
        b=b_label,
        kind=a.kind,
        metrics=rows,
        differences=differences,
        only_in_a=[i for i in items_a if i not in items_b],
        only_in_b=[i for i in items_b if i not in items_a],
        same_items=same,
    )


def render_text(comparison: Comparison) -> str:
    """The comparison as aligned text tables."""
    lines = [f"A: {comparison.a}", f"B: {comparison.b}", ""]
    width = max([len("metric"), *(len(r.metric) for r in comparison.metrics)])
    lines.append(f"{'metric':<{width}}  {'A':>8}  {'B':>8}  {'B-A':>8}  failed A/B")
    for row in comparison.metrics:
        lines.append(
            f"{row.metric:<{width}}  {_cell(row.a)}  {_cell(row.b)}  {_cell(row.delta, True)}"
            f"  {row.a_failed}/{row.b_failed}"
        )
    lines.append("")
    if comparison.differences:
        id_width = max([len("id"), *(len(d.id) for d in comparison.differences)])
        lines.append(f"{'id':<{id_width}}  {'metric':<{width}}  {'A':>8}  {'B':>8}  {'B-A':>8}")
        for diff in comparison.differences:
            lines.append(
                f"{diff.id:<{id_width}}  {diff.metric:<{width}}  {_cell(diff.a)}  "
                f"{_cell(diff.b)}  {_cell(diff.delta, True)}"
            )
    lines.append(
        f"{len(comparison.differences)} differing scores; {comparison.same_items} items unchanged"
    )
    if comparison.only_in_a:
        lines.append(f"only in A: {', '.join(comparison.only_in_a)}")
    if comparison.only_in_b:
        lines.append(f"only in B: {', '.join(comparison.only_in_b)}")
    return "\n".join(lines)


def _value(score: Score | None) -> float | None:
    return score.value if score is not None else None


def _differs(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return abs(a - b) > EPSILON


def _delta(a: float | None, b: float | None) -> float | None:
    return b - a if a is not None and b is not None else None


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return f"{'-':>8}"
    return f"{value:>+8.3f}" if signed else f"{value:>8.3f}"
