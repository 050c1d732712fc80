"""Geometry for the web view's inline SVG charts: numbers in, shapes out.

Pure: the templates draw what these functions compute, so no script and no
outside library is needed to show a chart, and every shape can be checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

WIDTH = 640
LABEL_WIDTH = 150
BAR_HEIGHT = 26
GAP = 12
PLOT_WIDTH = WIDTH - LABEL_WIDTH - 160  # room on the right for the value text


@dataclass(frozen=True)
class Bar:
    label: str
    text: str  # the value as shown beside the bar
    y: float
    width: float
    css: str  # class name: support | team


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    height: float
    marker_x: float | None  # a vertical line across the last bar, e.g. the break-even
    marker_text: str
    marker_top: float = 0.0


def _scale(value: float, top: float) -> float:
    return 0.0 if top <= 0 else round(PLOT_WIDTH * value / top, 1)


Row = tuple[str, float, str, str]  # label, value, value text, css class


def _chart(rows: list[Row], marker: float | None, marker_text: str) -> BarChart:
    top = max([value for _, value, _, _ in rows] + [marker or 0.0])
    bars = [
        Bar(label, text, GAP + i * (BAR_HEIGHT + GAP), _scale(value, top), css)
        for i, (label, value, text, css) in enumerate(rows)
    ]
    height = GAP + len(rows) * (BAR_HEIGHT + GAP)
    marker_x = None if marker is None else LABEL_WIDTH + _scale(marker, top)
    return BarChart(bars, height, marker_x, marker_text, bars[-1].y - GAP / 2)


def cost_chart(report: dict[str, Any]) -> BarChart:
    """Each model's bill per period; the marker sits at the Support bill."""
    money = f"{report['currency']}/{report['period']}"
    support, team = report["support"], report["team"]
    rows = [
        ("Support (agents)", support["cost"], f"{support['cost']:,.2f} {money}", "support"),
        ("Team (every user)", team["cost"], f"{team['cost']:,.2f} {money}", "team"),
    ]
    return _chart(rows, None, "")


def seat_chart(report: dict[str, Any]) -> BarChart:
    """Seats per model, with the break-even: the most Team seats that cost no more."""
    support, team = report["support"], report["team"]
    rows = [
        ("Support seats", support["seats"], f"{support['seats']} agent(s)", "support"),
        ("Team seats", team["seats"], f"{team['seats']} user(s)", "team"),
    ]
    breakeven = report["breakeven_team_seats"]
    text = "" if breakeven is None else f"break-even: {breakeven} Team seat(s)"
    return _chart(rows, breakeven, text)


MAX_STEPS = 300  # a long ledger is sampled, so that a page stays small


X_TICKS = 5  # labelled points on the x axis: the first event, the last, and between


@dataclass(frozen=True)
class Tick:
    x: float
    label: str  # the event's number in the ledger


@dataclass(frozen=True)
class SeatLines:
    """Seats per model after each ledger event, as SVG polyline points (steps)."""

    points: dict[str, str]
    width: float
    height: float
    top: int
    events: int
    ticks: tuple[Tick, ...] = ()
    first_at: str | None = None  # the times of the first and last event, for the axis title
    last_at: str | None = None


def _ticks(events: int, width: float) -> tuple[Tick, ...]:
    """Whole event numbers spread over the axis; as many as there are events, up to X_TICKS."""
    count = min(X_TICKS, events + 1)
    numbers = sorted({round(events * i / max(1, count - 1)) for i in range(count)})
    return tuple(Tick(round(width * n / max(1, events), 1), str(n)) for n in numbers)


def _minute(at: str | None) -> str | None:
    """`2026-12-02T04:24:14.048Z` -> `2026-12-02 04:24Z`: the axis says when, briefly."""
    return None if not at else f"{at[:10]} {at[11:16]}Z"


def seat_lines(
    ledger: Iterable[Mapping[str, Any]],
    width: float = WIDTH,
    height: float = 160,
    events: int | None = None,
    span: tuple[str | None, str | None] | None = None,
) -> SeatLines:
    """Seats per model after each ledger event, in one pass over `ledger` (rows with
    "model", "delta" and "at"). `events`: how many rows `ledger` holds, when it is an
    iterator read once (the ledger streamed from the database); only the sampled
    points are kept. `span`: the first and last rows' times, when the rows carry none."""
    if events is None:
        ledger = list(ledger)
        events = len(ledger)
    steps = max(1, events)
    every = max(1, -(-steps // MAX_STEPS))  # ceiling division
    indices = sorted({*range(0, steps + 1, every), events})
    wanted = set(indices)
    seats = {"support": 0, "team": 0}
    series: dict[str, dict[int, int]] = {"support": {0: 0}, "team": {0: 0}}
    top = 1
    first_at = last_at = None
    for number, event in enumerate(ledger, 1):
        seats[event["model"]] += event["delta"]
        top = max(top, seats["support"], seats["team"])
        if number in wanted:
            for model, history in series.items():
                history[number] = seats[model]
        if number == 1:
            first_at = event.get("at")
        last_at = event.get("at")

    def step_line(history: dict[int, int]) -> str:
        corners: list[tuple[float, float]] = []
        held = 0
        for index in indices:
            held = history.get(index, held)  # no such event (an empty ledger): level
            x = round(width * index / steps, 1)
            y = round(height - height * held / top, 1)
            if corners:  # run level to this x, then rise or fall: a step, not a slope
                corners.append((x, corners[-1][1]))
            corners.append((x, y))
        return " ".join(f"{x},{y}" for x, y in corners)

    points = {model: step_line(history) for model, history in series.items()}
    return SeatLines(
        points,
        width,
        height,
        top,
        events,
        _ticks(events, width),
        _minute(span[0] if span else first_at),
        _minute(span[1] if span else last_at),
    )
