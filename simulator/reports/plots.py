"""The charts of `sweep --plot` and `report --by month --plot`, built on the one
chart module (charts.py), which draws them as PNG, SVG or HTML by the file's suffix.

Seats and money each get their own panel: seats with whole-number ticks, money
in the org's currency per billing period, both from 0 on linear axes. A sweep
over decades of volume puts volume on a log axis and says so in the label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.org import Org
from simulator.reports import charts
from simulator.reports.charts import SUPPORT_COLOUR, TEAM_COLOUR, Chart, Marker, Panel, Series

MODELS = (
    ("support", SUPPORT_COLOUR, "Support (agents)"),
    ("team", TEAM_COLOUR, "Team (every user)"),
)
LOG_SPAN = 100  # volumes spanning this factor or more go on a log axis


def price_label(org: Org) -> str:
    p = org.pricing
    return (
        f"Support {p.support_per_agent:g} {p.currency}/agent ({p.support.shape.value}), "
        f"Team {p.team_per_user:g} {p.currency}/user ({p.team.shape.value}) per {p.period}"
    )


def money_label(org: Org) -> str:
    return f"{org.pricing.currency} per {org.pricing.period}"


def _pair(
    rows: list[dict[str, Any]], key: str, links: list[str | None] | None = None
) -> list[Series]:
    return [
        Series(name, [float(r[model][key]) for r in rows], colour, links=links)
        for model, colour, name in MODELS
    ]


def _cost_markers(series: list[Series], at: float | None, text: str) -> list[Marker]:
    """A marker on the cost panel only where the two cost lines really cross."""
    if at is None or not charts.crosses(series[0].values, series[1].values):
        return []
    return [Marker(at, text)]


def sweep_chart(rows: list[dict[str, Any]], crossing: float | None, org: Org) -> Chart:
    volumes = [r["volume"] for r in rows]
    log_x = len(volumes) > 1 and max(volumes) >= LOG_SPAN * min(volumes)
    x_label = "emails per month" + (" (log scale)" if log_x else "")
    costs = _pair(rows, "cost")
    return Chart(
        f"{org.name}: how volume changes the bill",
        price_label(org),
        [
            Panel("Paid seats", x_label, "seats", volumes, _pair(rows, "seats"), True, log_x),
            Panel(
                f"Cost per {org.pricing.period}",
                x_label,
                money_label(org),
                volumes,
                costs,
                log_x=log_x,
                markers=_cost_markers(costs, crossing, f"crossover at {crossing or 0:,.0f}/month"),
            ),
        ],
    )


def _change(rows: list[dict[str, Any]]) -> float | None:
    """The index (between two months) where the cheaper model changes, if it does."""
    cheaper = [r["cheaper_model"] for r in rows]
    for index in range(1, len(cheaper)):
        if cheaper[index] != cheaper[index - 1] and "equal" not in cheaper[index - 1 : index + 1]:
            return index - 0.5
    return None


def months_chart(rows: list[dict[str, Any]], org: Org, links: bool = False) -> Chart:
    """Billed seats and the bill per month, per model."""
    months = [r["month"] for r in rows]
    anchors: list[str | None] | None = [f"#ledger-{m}" for m in months] if links else None
    costs = [
        Series(name, [float(r[model]["cost"]) for r in rows], colour, links=anchors)
        for model, colour, name in MODELS
    ]
    return Chart(
        f"{org.name}: seats and cost per month",
        price_label(org),
        [
            Panel(
                "Billed seats per month",
                "month",
                "billed seats",
                months,
                _pair(rows, "billed_seats", anchors),
                True,
            ),
            Panel(
                f"Bill per {org.pricing.period}",
                "month",
                money_label(org),
                months,
                costs,
                markers=_cost_markers(costs, _change(rows), "cheaper model changes"),
            ),
        ],
    )


def plot_sweep(rows: list[dict[str, Any]], crossing: float | None, org: Org, path: Path) -> None:
    charts.save(sweep_chart(rows, crossing, org), path)


def plot_months(rows: list[dict[str, Any]], org: Org, path: Path) -> None:
    charts.save(months_chart(rows, org), path)


def forecast_chart(data: dict[str, Any], book: int = 0, links: bool = False) -> Chart:
    """A price book's forecast: billed seats and the bill per month over the term."""
    f = data["forecasts"][book]
    months = [m["month"] for m in f["months"]]
    anchors: list[str | None] | None = [f"#forecast-{m}" for m in months] if links else None
    money = f"{f['currency']} per {f['period']}"
    costs = [
        Series(name, [float(m[model]["cost"]) for m in f["months"]], colour, links=anchors)
        for model, colour, name in MODELS
    ]
    seats_series = [
        Series(name, [float(m[model]["billed_seats"]) for m in f["months"]], colour, links=anchors)
        for model, colour, name in MODELS
    ]
    growth = data["volume_growth_per_year"]
    return Chart(
        f"{data['organization']}: {f['term']['months']}-month forecast, {f['price_book']}",
        f"volume {growth:+.0%} a year, customers {data['customer_growth_per_year']:+.0%} a year; "
        f"Support {f['support_per_agent']:g}, Team {f['team_per_user']:g} {money}",
        [
            Panel("Billed seats per month", "month", "billed seats", months, seats_series, True),
            Panel(
                f"Bill per {f['period']}",
                "month",
                money,
                months,
                costs,
                markers=_cost_markers(costs, _change(f["months"]), "cheaper model changes"),
            ),
        ],
    )


def tornado_chart(sensitivity: dict[str, Any], links: bool = False) -> Chart:
    """How far each assumption moves the term's Team minus Support cost; a bar over
    the zero line flips the cheaper model."""
    unit = sensitivity["currency"]
    rows = [
        charts.TornadoRow(
            a["label"],
            a["low"]["team_minus_support"],
            a["high"]["team_minus_support"],
            a["low"]["text"],
            a["high"]["text"],
            f"#sensitivity-{a['key']}" if links else None,
        )
        for a in sensitivity["assumptions"]
    ]
    return Chart(
        "",
        "",
        [
            charts.Tornado(
                "What moves the decision: Team minus Support over the term",
                f"Team minus Support, {unit} over the term (left of 0: Team cheaper)",
                rows,
                "0: the models tie",
            )
        ],
    )


def save_forecast_chart(data: dict[str, Any], path: Path) -> None:
    charts.save(forecast_chart(data), path)
