"""A small bar chart as plain geometry, drawn as SVG by a template. Pure.

Server-side SVG needs no front-end package and no script, and stays readable under the
Content-Security-Policy: colours come from the stylesheet through classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from merchant_backend.web.format import day_label

WIDTH = 320.0
HEIGHT = 140.0
TOP = 14.0  # room for the maximum's label
BOTTOM = 18.0  # room for the day labels
GAP = 2.0


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: str
    value: int
    text: str


@dataclass(frozen=True)
class Tick:
    x: float
    text: str
    anchor: str  # SVG text-anchor: the first and last labels stay inside the chart


@dataclass(frozen=True)
class Chart:
    title: str
    width: float
    height: float
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    max_text: str
    total_text: str


def bar_chart(
    title: str,
    days: list[int],
    values: dict[int, int],
    fmt: Callable[[int], str] = str,
) -> Chart:
    """One bar per day in ``days`` (missing days count 0), scaled to the largest value."""
    plot = HEIGHT - TOP - BOTTOM
    slot = WIDTH / max(len(days), 1)
    peak = max((values.get(d, 0) for d in days), default=0)
    bars = []
    for i, d in enumerate(days):
        value = values.get(d, 0)
        h = plot * value / peak if peak > 0 else 0.0
        # A day with something in it stays visible however small it is next to the peak.
        if value > 0:
            h = max(h, 1.5)
        bars.append(
            Bar(
                x=round(i * slot + GAP / 2, 2),
                y=round(TOP + plot - h, 2),
                width=round(max(slot - GAP, 1.0), 2),
                height=round(h, 2),
                day=day_label(d),
                value=value,
                text=fmt(value),
            )
        )
    ticks: list[Tick] = []
    if days:
        last = len(days) - 1
        for i in sorted({0, len(days) // 2, last}):
            if i == 0:
                x, anchor = 0.0, "start"
            elif i == last:
                x, anchor = WIDTH, "end"
            else:
                x, anchor = i * slot + slot / 2, "middle"
            ticks.append(Tick(x=round(x, 2), text=day_label(days[i]), anchor=anchor))
    total = sum(values.get(d, 0) for d in days)
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        baseline=TOP + plot,
        bars=bars,
        ticks=ticks,
        max_text=fmt(peak),
        total_text=fmt(total),
    )
