"""The HTML report of an eval run: one self-contained file. Pure (a string from a run).

Sections: the settings, the summary (mean, scored, failed, skipped per
metric, and per group for capability suites), the plots (a score
distribution per metric with failures in red, latency per item), and the
per-item table (question, answer, reference, each score, with the reason of a
missing score, latency, and notes such as judged claims). Styles are inline;
there is no script and no external asset, so the file opens offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path

from gatehouse.evals import svg
from gatehouse.evals.results import EvalRun, ItemResult, MetricSummary, Score

CELL_CHARS = 300

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif;
       margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #eef2f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.failed { color: #c0392b; font-weight: bold; }
td.skipped { color: #888; }
.muted { color: #666; font-size: 13px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots svg { border: 1px solid #ddd; }
details summary { cursor: pointer; color: #3b6ea8; }
ul.notes { margin: 4px 0 0 16px; padding: 0; }
"""


def render(run: EvalRun) -> str:
    """The report of ``run`` as an HTML document."""
    title = f"gatehouse eval {run.kind}: {run.name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">{escape(run.created_at)} &middot; {len(run.items)} items</p>',
        "<h2>Settings</h2>",
        _key_values({**run.settings, **run.usage}),
        "<h2>Summary</h2>",
        _summary_table(run.summary),
    ]
    if run.groups:
        parts.append("<h2>By group</h2>")
        parts.append(_groups_table(run))
    parts.append("<h2>Plots</h2>")
    parts.append(f'<div class="plots">{_plots(run)}</div>')
    parts.append("<h2>Per item</h2>")
    parts.append(_items_table(run))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run: EvalRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(run), encoding="utf-8")


def _fmt(value: float | None) -> str:
    return "&mdash;" if value is None else f"{value:.3f}"


def _key_values(values: Mapping[str, object]) -> str:
    rows = "".join(
        f"<tr><th>{escape(key)}</th><td>{escape(str(value))}</td></tr>"
        for key, value in values.items()
        if value is not None
    )
    return f"<table>{rows}</table>"


def _summary_row(name: str, summary: MetricSummary) -> str:
    failed_class = ' class="num failed"' if summary.failed else ' class="num"'
    return (
        f"<tr><td>{escape(name)}</td><td class=num>{_fmt(summary.mean)}</td>"
        f"<td class=num>{summary.scored}</td><td{failed_class}>{summary.failed}</td>"
        f"<td class=num>{summary.skipped}</td></tr>"
    )


_SUMMARY_HEAD = (
    "<tr><th>metric</th><th>mean</th><th>scored</th><th>failed</th><th>skipped</th></tr>"
)


def _summary_table(summary: Mapping[str, MetricSummary]) -> str:
    rows = "".join(_summary_row(name, s) for name, s in summary.items())
    return f"<table>{_SUMMARY_HEAD}{rows}</table>"


def _groups_table(run: EvalRun) -> str:
    head = "<tr><th>group</th>" + "".join(f"<th>{escape(m)}</th>" for m in run.metrics) + "</tr>"
    rows = "".join(
        f"<tr><td>{escape(group)}</td>"
        + "".join(f"<td class=num>{_fmt(metrics[m].mean)}</td>" for m in run.metrics)
        + "</tr>"
        for group, metrics in run.groups.items()
    )
    return f"<table>{head}{rows}</table>"


def _plots(run: EvalRun) -> str:
    charts = []
    for metric in run.metrics:
        scores = [item.scores.get(metric) for item in run.items]
        values = [s.value for s in scores if s is not None and s.value is not None]
        failed = sum(1 for s in scores if s is not None and s.failed)
        charts.append(svg.histogram(f"{metric}: distribution", values, failed=failed))
    timed = [item for item in run.items if item.latency_ms]
    if timed:
        means = [sum(i.latency_ms) / len(i.latency_ms) for i in timed]
        charts.append(svg.bars("latency per item (mean, ms)", [i.id for i in timed], means))
    return "".join(charts)


def _score_cell(score: Score | None) -> str:
    if score is None:
        return '<td class="skipped">&mdash;</td>'
    if score.value is not None:
        return f"<td class=num>{score.value:.3f}</td>"
    css = "failed" if score.failed else "skipped"
    label = "failed" if score.failed else "n/a"
    return f'<td class="{css}" title="{escape(score.reason or "")}">{label}</td>'


def _text(value: str | None) -> str:
    if value is None:
        return "&mdash;"
    flat = " ".join(value.split())
    return escape(flat if len(flat) <= CELL_CHARS else flat[:CELL_CHARS] + "...")


def _notes(item: ItemResult) -> str:
    reasons = [
        f"{name}: {score.reason}" for name, score in item.scores.items() if score.reason is not None
    ]
    notes = reasons + item.notes
    if not notes:
        return ""
    entries = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return (
        f'<details><summary>{len(notes)} notes</summary><ul class="notes">{entries}</ul></details>'
    )


def _items_table(run: EvalRun) -> str:
    head = (
        "<tr><th>id</th><th>input</th><th>output</th><th>expected</th>"
        + "".join(f"<th>{escape(m)}</th>" for m in run.metrics)
        + "<th>latency ms</th><th>notes</th></tr>"
    )
    rows = []
    for item in run.items:
        latency = (
            f"{sum(item.latency_ms) / len(item.latency_ms):.0f}" if item.latency_ms else "&mdash;"
        )
        label = escape(item.id) + (
            f'<br><span class="muted">{escape(item.group)}</span>' if item.group else ""
        )
        rows.append(
            f"<tr><td>{label}</td><td>{_text(item.input)}</td><td>{_text(item.output)}</td>"
            f"<td>{_text(item.expected)}</td>"
            + "".join(_score_cell(item.scores.get(m)) for m in run.metrics)
            + f"<td class=num>{latency}</td><td>{_notes(item)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"
