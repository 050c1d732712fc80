"""One chart module: a chart is described once, then drawn as SVG, HTML or PNG.

The finance reader's rules live here, so every command draws them the same way:
axes are labelled (money axes name the currency and period), seat axes get whole
ticks, y starts at 0, axes are linear unless a chart asks for a log x (a volume
sweep over decades says so in its label), and a marker is only drawn where it
means something (a crossover only on a panel whose lines do cross).

SVG and HTML are plain strings with no script and no outside asset, so the web
view and the HTML report need nothing installed; PNG goes through matplotlib,
the optional `plots` extra, imported only when a PNG is asked for.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.errors import ConfigError

SUPPORT_COLOUR = "#1f5fa8"
TEAM_COLOUR = "#c2332b"
GREY = "#6b6b6b"
GREEN = "#2a8a3e"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float]
    colour: str
    kind: str = "line"  # line | bar
    links: list[str | None] | None = None  # per point: where the figure comes from


@dataclass(frozen=True)
class Marker:
    """A vertical line at an x position (an index into categories, or a value)."""

    at: float
    text: str


@dataclass(frozen=True)
class Panel:
    title: str
    x_label: str
    y_label: str
    x: list[Any]  # category labels (str) or numbers
    series: list[Series]
    whole_numbers: bool = False  # seat counts: integer ticks only
    log_x: bool = False  # only for numeric x spanning decades; the label says so
    markers: list[Marker] = field(default_factory=list)


@dataclass(frozen=True)
class TornadoRow:
    label: str
    low: float  # the outcome at the assumption's low end
    high: float  # ... and at its high end
    low_text: str
    high_text: str
    link: str | None = None


@dataclass(frozen=True)
class Tornado:
    """Bars around a baseline: how far each assumption moves an outcome; crossing
    the zero line (the flip point) changes the answer."""

    title: str
    x_label: str
    rows: list[TornadoRow]
    zero_text: str = "flip point"


@dataclass(frozen=True)
class Chart:
    title: str
    subtitle: str
    panels: list[Panel | Tornado]


# -- scales and ticks ---------------------------------------------------------------


def nice_ticks(top: float, whole: bool = False, count: int = 5) -> list[float]:
    """Ticks from 0 to at least `top`, about `count` of them, at 1, 2, 2.5 or 5 x 10^k;
    whole numbers only when `whole` (a seat axis never shows 0.5)."""
    top = max(top, 1.0 if whole else 1e-9)
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if whole:
        step = max(1.0, math.ceil(step))
    ticks = [0.0]
    while ticks[-1] < top - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def tick_text(value: float) -> str:
    if value.is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def crosses(first: list[float], second: list[float]) -> bool:
    """Whether two series change order (or meet after differing) anywhere."""
    signs = {(a > b) - (a < b) for a, b in zip(first, second, strict=True)}
    return {-1, 1} <= signs or (0 in signs and len(signs) > 1)


def _positions(panel: Panel, width: float) -> list[float]:
    if panel.x and all(isinstance(v, int | float) for v in panel.x) and len(panel.x) > 1:
        values = [math.log10(v) if panel.log_x else float(v) for v in panel.x]
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        return [width * (v - low) / span for v in values]
    if len(panel.x) == 1:
        return [width / 2]
    step = width / max(1, len(panel.x))
    return [step * (i + 0.5) for i in range(len(panel.x))]


def _marker_x(panel: Panel, at: float, width: float) -> float:
    numeric = all(isinstance(v, int | float) for v in panel.x) and len(panel.x) > 1
    if not numeric:
        return _positions(panel, width)[0] + (width / max(1, len(panel.x))) * at
    values = [math.log10(v) if panel.log_x else float(v) for v in panel.x]
    where = math.log10(at) if panel.log_x else at
    low, high = min(values), max(values)
    return width * (where - low) / ((high - low) or 1.0)


# -- SVG ----------------------------------------------------------------------------

PANEL_WIDTH = 360.0
PANEL_HEIGHT = 250.0
LEFT, RIGHT, TOP, BOTTOM = 62.0, 14.0, 30.0, 58.0


def _text(x: float, y: float, text: str, **attributes: Any) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in attributes.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" {extra}>{html.escape(text)}</text>'


def _link(svg: str, href: str | None, title: str) -> str:
    tip = f"<title>{html.escape(title)}</title>"
    if not href:
        return f"<g>{tip}{svg}</g>"
    return f'<a href="{html.escape(href)}">{tip}{svg}</a>'


def _panel_svg(panel: Panel, left: float, top: float) -> list[str]:
    width = PANEL_WIDTH - LEFT - RIGHT
    height = PANEL_HEIGHT - TOP - BOTTOM
    x0, y0 = left + LEFT, top + TOP
    peak = max([v for s in panel.series for v in s.values] + [0.0])
    ticks = nice_ticks(peak, panel.whole_numbers)
    y_top = ticks[-1] or 1.0
    xs = [x0 + p for p in _positions(panel, width)]

    def y_at(value: float) -> float:
        return y0 + height - height * value / y_top

    parts = [
        _text(
            left + PANEL_WIDTH / 2,
            top + 16,
            panel.title,
            text_anchor="middle",
            font_weight="600",
            font_size="12",
        )
    ]
    for tick in ticks:
        y = y_at(tick)
        parts.append(
            f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + width}" y2="{y:.1f}" stroke="#e3e3e3"/>'
        )
        parts.append(_text(x0 - 5, y + 3.5, tick_text(tick), text_anchor="end", font_size="10"))
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + height}" stroke="#444"/>')
    parts.append(
        f'<line x1="{x0}" y1="{y0 + height}" x2="{x0 + width}" y2="{y0 + height}" stroke="#444"/>'
    )
    # As many x labels as fit side by side (about 6 px a character at this size).
    longest = max(
        (len(tick_text(float(v)) if isinstance(v, int | float) else str(v)) for v in panel.x),
        default=1,
    )
    fits = max(1, int(width // (6.2 * longest + 8)))
    every = max(1, math.ceil(len(panel.x) / fits))
    for index, (x, label) in enumerate(zip(xs, panel.x, strict=True)):
        if index % every:
            continue
        text = tick_text(float(label)) if isinstance(label, int | float) else str(label)
        parts.append(_text(x, y0 + height + 14, text, text_anchor="middle", font_size="10"))
    parts.append(
        _text(x0 + width / 2, y0 + height + 32, panel.x_label, text_anchor="middle", font_size="11")
    )
    middle = y0 + height / 2
    parts.append(
        _text(
            left + 12,
            middle,
            panel.y_label,
            text_anchor="middle",
            font_size="11",
            transform=f"rotate(-90 {left + 12:.1f} {middle:.1f})",
        )
    )
    bars = [s for s in panel.series if s.kind == "bar"]
    slot = width / max(1, len(panel.x))
    bar_width = slot * 0.7 / max(1, len(bars))
    for number, series in enumerate(bars):
        for index, (x, value) in enumerate(zip(xs, series.values, strict=True)):
            bx = x - slot * 0.35 + number * bar_width
            shape = (
                f'<rect x="{bx:.1f}" y="{y_at(value):.1f}" width="{bar_width:.1f}" '
                f'height="{y0 + height - y_at(value):.1f}" fill="{series.colour}" '
                'opacity="0.55"/>'
            )
            link = series.links[index] if series.links else None
            parts.append(
                _link(shape, link, f"{series.name} {panel.x[index]}: {tick_text(float(value))}")
            )
    for series in (s for s in panel.series if s.kind == "line"):
        points = " ".join(f"{x:.1f},{y_at(v):.1f}" for x, v in zip(xs, series.values, strict=True))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{series.colour}" stroke-width="2"/>'
        )
        for index, (x, value) in enumerate(zip(xs, series.values, strict=True)):
            dot = f'<circle cx="{x:.1f}" cy="{y_at(value):.1f}" r="3" fill="{series.colour}"/>'
            link = series.links[index] if series.links else None
            parts.append(
                _link(dot, link, f"{series.name} {panel.x[index]}: {tick_text(float(value))}")
            )
    for marker in panel.markers:
        mx = x0 + _marker_x(panel, marker.at, width)
        parts.append(
            f'<line x1="{mx:.1f}" y1="{y0}" x2="{mx:.1f}" y2="{y0 + height}" '
            f'stroke="{GREY}" stroke-dasharray="4 3"/>'
        )
        parts.append(_text(mx + 3, y0 + 10, marker.text, font_size="9", fill=GREY))
    legend_y = top + PANEL_HEIGHT - 10
    cursor = x0
    for series in panel.series:
        parts.append(
            f'<rect x="{cursor:.1f}" y="{legend_y - 8:.1f}" width="10" height="10" '
            f'fill="{series.colour}"/>'
        )
        parts.append(_text(cursor + 14, legend_y, series.name, font_size="10"))
        cursor += 24 + 5.6 * len(series.name)
    return parts


def _tornado_svg(panel: Tornado, left: float, top: float, width: float) -> tuple[list[str], float]:
    label_width, row_height = 230.0, 24.0
    plot = width - label_width - 110
    height = TOP + row_height * len(panel.rows) + 44
    values = [v for r in panel.rows for v in (r.low, r.high)] + [0.0]
    spread = max(abs(v) for v in values) or 1.0
    x_zero = left + label_width + plot / 2

    def x_at(value: float) -> float:
        return x_zero + (plot / 2) * value / spread

    parts = [
        _text(
            left + width / 2,
            top + 16,
            panel.title,
            text_anchor="middle",
            font_weight="600",
            font_size="12",
        )
    ]
    for index, row in enumerate(panel.rows):
        y = top + TOP + index * row_height
        parts.append(
            _text(left + label_width - 6, y + 15, row.label, text_anchor="end", font_size="10")
        )
        low, high = sorted((x_at(row.low), x_at(row.high)))
        flips = (row.low < 0) != (row.high < 0)
        colour = TEAM_COLOUR if flips else SUPPORT_COLOUR
        bar = (
            f'<rect x="{low:.1f}" y="{y + 4:.1f}" width="{max(high - low, 1.5):.1f}" '
            f'height="{row_height - 8:.1f}" fill="{colour}" opacity="0.75"/>'
        )
        parts.append(_link(bar, row.link, f"{row.label}: {row.low_text} to {row.high_text}"))
        parts.append(_text(low - 3, y + 15, row.low_text, text_anchor="end", font_size="9"))
        parts.append(_text(high + 3, y + 15, row.high_text, font_size="9"))
    bottom = top + TOP + row_height * len(panel.rows)
    parts.append(
        f'<line x1="{x_zero:.1f}" y1="{top + TOP - 4}" x2="{x_zero:.1f}" '
        f'y2="{bottom:.1f}" stroke="#222" stroke-dasharray="3 2"/>'
    )
    parts.append(_text(x_zero, bottom + 13, panel.zero_text, text_anchor="middle", font_size="9"))
    parts.append(
        _text(
            left + label_width + plot / 2,
            bottom + 30,
            panel.x_label,
            text_anchor="middle",
            font_size="11",
        )
    )
    return parts, height


def svg(chart: Chart) -> str:
    """The chart as one standalone SVG element: panels side by side, a tornado below."""
    plots = [p for p in chart.panels if isinstance(p, Panel)]
    tornadoes = [p for p in chart.panels if isinstance(p, Tornado)]
    width = max(PANEL_WIDTH * max(1, len(plots)), 640.0 if tornadoes else 0.0)
    heading = 40.0 if chart.title else 0.0
    parts: list[str] = []
    if chart.title:
        parts.append(_text(8, 16, chart.title, font_weight="700", font_size="13"))
        parts.append(_text(8, 32, chart.subtitle, font_size="10", fill=GREY))
    for index, panel in enumerate(plots):
        parts += _panel_svg(panel, index * PANEL_WIDTH, heading)
    cursor = heading + (PANEL_HEIGHT if plots else 0.0)
    for panel in tornadoes:
        drawn, height = _tornado_svg(panel, 0.0, cursor, width)
        parts += drawn
        cursor += height
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {cursor:.0f}" '
        f'width="{width:.0f}" height="{cursor:.0f}" font-family="{FONT}" role="img" '
        f'aria-label="{html.escape(chart.title)}">' + "".join(parts) + "</svg>"
    )


def html_figure(chart: Chart, caption: str = "") -> str:
    """The chart as an HTML figure: inline SVG, no script, no outside asset."""
    text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure class="chart">{svg(chart)}{text}</figure>'


# -- PNG ----------------------------------------------------------------------------


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        # Charts are an extra, so the demo's install stays small.
        raise ConfigError(
            "PNG charts need matplotlib: pip install 'intake-sim[plots]' (or draw .svg/.html)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png_panel(axis: Any, panel: Panel) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    numeric = all(isinstance(v, int | float) for v in panel.x) and len(panel.x) > 1
    xs: list[Any] = list(panel.x) if numeric else list(range(len(panel.x)))
    bars = [s for s in panel.series if s.kind == "bar"]
    for number, series in enumerate(bars):
        offset = (number - (len(bars) - 1) / 2) * 0.7 / max(1, len(bars))
        axis.bar(
            [x + offset for x in xs],
            series.values,
            width=0.7 / max(1, len(bars)),
            color=series.colour,
            alpha=0.55,
            label=series.name,
        )
    for series in (s for s in panel.series if s.kind == "line"):
        axis.plot(xs, series.values, "o-", color=series.colour, label=series.name)
    if panel.log_x:
        axis.set_xscale("log")
    if not numeric:
        every = max(1, math.ceil(len(xs) / 8))  # at most 8 x labels, as in the SVG
        shown = [i for i in range(len(xs)) if i % every == 0]
        axis.set_xticks(shown, [str(panel.x[i]) for i in shown], rotation=45 if len(xs) > 6 else 0)
    peak = max([v for s in panel.series for v in s.values] + [0.0])
    axis.set_ylim(0, nice_ticks(peak, panel.whole_numbers)[-1] or 1)
    if panel.whole_numbers:
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: tick_text(float(v))))
    for marker in panel.markers:
        at = marker.at
        axis.axvline(at, color=GREY, linestyle="--")
        axis.annotate(
            marker.text,
            (at, 0.5),
            xycoords=("data", "axes fraction"),
            fontsize=8,
            color=GREY,
            rotation=90,
            ha="right",
            va="center",
        )
    axis.set_title(panel.title, fontsize=10)
    axis.set_xlabel(panel.x_label)
    axis.set_ylabel(panel.y_label)
    axis.grid(True, alpha=0.3)
    axis.legend(loc="upper left", fontsize=8, framealpha=0.9)


def _png_tornado(axis: Any, panel: Tornado) -> None:
    labels = [r.label for r in panel.rows][::-1]
    for index, row in enumerate(panel.rows[::-1]):
        low, high = sorted((row.low, row.high))
        flips = (row.low < 0) != (row.high < 0)
        axis.barh(
            index, high - low, left=low, color=TEAM_COLOUR if flips else SUPPORT_COLOUR, alpha=0.75
        )
    axis.set_yticks(range(len(labels)), labels, fontsize=8)
    axis.axvline(0, color="#222", linestyle=":")
    axis.set_title(panel.title, fontsize=10)
    axis.set_xlabel(panel.x_label)


def png(chart: Chart, path: Path) -> None:
    plt = _pyplot()
    plots = [p for p in chart.panels if isinstance(p, Panel)]
    tornadoes = [p for p in chart.panels if isinstance(p, Tornado)]
    rows = (1 if plots else 0) + len(tornadoes)
    fig = plt.figure(figsize=(5.5 * max(1, len(plots)), 4.6 * rows))
    grid = fig.add_gridspec(rows, max(1, len(plots)))
    for index, panel in enumerate(plots):
        _png_panel(fig.add_subplot(grid[0, index]), panel)
    for index, tornado in enumerate(tornadoes):
        _png_tornado(fig.add_subplot(grid[(1 if plots else 0) + index, :]), tornado)
    fig.suptitle(f"{chart.title}\n{chart.subtitle}", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def save(chart: Chart, path: Path) -> None:
    """Draw `chart` to `path`: .png (matplotlib), .svg, or .html (a page with the figure)."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        png(chart, path)
        return
    if suffix == ".svg":
        text = '<?xml version="1.0" encoding="UTF-8"?>\n' + svg(chart) + "\n"
    elif suffix in (".html", ".htm"):
        text = (
            f'<!doctype html><html lang="en"><meta charset="utf-8"><title>'
            f'{html.escape(chart.title)}</title><body style="font-family:{FONT}">'
            f"{html_figure(chart)}</body></html>\n"
        )
    else:
        raise ConfigError(f"{path}: a chart is .png, .svg or .html, not {suffix or 'no suffix'!r}")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
