"""Small inline SVG charts for the HTML report: a histogram and a bar chart. Pure.

Hand-written SVG keeps the report one self-contained file (no plotting
library, no script, no CDN) that renders the same in any browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 420, 200
LEFT, RIGHT, TOP, BOTTOM = 40, 12, 28, 36
BAR = "#3b6ea8"
FAILED = "#c0392b"
AXIS = "#555"


def _tick(value: float) -> str:
    """An axis label: whole numbers, but small fractions (a few cents) keep two digits."""
    return f"{value:.0f}" if value == 0 or abs(value) >= 1 else f"{value:.2g}"


def _frame(title: str, body: list[str], max_count: float, unit: str = "") -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    ticks = []
    for frac in (0, 0.5, 1):
        y = TOP + plot_h * (1 - frac)
        label = _tick(max_count * frac) if max_count >= 4 or frac in (0, 1) else ""
        if unit and label:
            label += unit
        ticks.append(
            f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="10" fill="{AXIS}">{escape(label)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>'
        f'<text x="{WIDTH / 2:.0f}" y="16" text-anchor="middle" font-size="12" '
        f'font-weight="bold" fill="#222">{escape(title)}</text>'
        + "".join(ticks)
        + "".join(body)
        + f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
        f'y2="{HEIGHT - BOTTOM}" stroke="{AXIS}"/></svg>'
    )


def histogram(title: str, values: Sequence[float], *, bins: int = 10, failed: int = 0) -> str:
    """Counts of ``values`` (in 0..1) in ``bins`` equal bins, plus a red bar for ``failed``."""
    counts = [0] * bins
    for value in values:
        counts[min(int(value * bins), bins - 1) if value > 0 else 0] += 1
    # Each bin is labelled with its lower bound; the last one includes 1.
    columns = [(f"{i / bins:.1f}", c, BAR) for i, c in enumerate(counts)]
    columns[-1] = (f"{columns[-1][0]}-1", columns[-1][1], BAR)
    if failed:
        columns.append(("failed", failed, FAILED))
    chart = _columns(title, columns, {i: name for i, (name, _, _) in enumerate(columns)})
    if not values and not failed:
        note = (
            f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle" '
            f'font-size="12" fill="{AXIS}">nothing scored</text>'
        )
        chart = chart.replace("</svg>", note + "</svg>")
    return chart


def bars(title: str, labels: Sequence[str], values: Sequence[float], *, unit: str = "") -> str:
    """One bar per label; labels are shown under the bars when few enough to read."""
    columns = [(label, value, BAR) for label, value in zip(labels, values, strict=True)]
    shown = {i: label for i, label in enumerate(labels)} if len(labels) <= 12 else {}
    return _columns(title, columns, shown, unit=unit)


def _columns(
    title: str,
    columns: Sequence[tuple[str, float, str]],
    labels: dict[int, str],
    *,
    unit: str = "",
) -> str:
    top = max((value for _, value, _ in columns), default=0) or 1
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(columns), 1)
    body: list[str] = []
    for i, (name, value, colour) in enumerate(columns):
        h = plot_h * value / top
        x = LEFT + i * step + step * 0.1
        y = TOP + plot_h - h
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.8:.1f}" height="{h:.1f}" '
            f'fill="{colour}"><title>{escape(name)}: {value:g}{escape(unit)}</title></rect>'
        )
        label = labels.get(i, name if colour == FAILED else None)
        if label is not None:
            body.append(
                f'<text x="{x + step * 0.4:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" '
                f'font-size="10" fill="{AXIS}">{escape(label[:10])}</text>'
            )
    return _frame(title, body, top, unit)
