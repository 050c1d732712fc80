"""The one-page finance report (`report --html`): the decision, the money, the
forecast, what flips it, the prices, the assumptions and the fit, on at most
three printed A4 pages.

One self-contained HTML file: inline CSS and inline SVG charts from the one chart
module, no script, no font or image from outside. Every figure carries a
`data-key`, the path of the value in the JSON the CLI prints for it (`report`,
`report --by month`, `forecast --sensitivity`), so a reader, or a test, can
check each one; every chart point and month links to the rows behind it.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from simulator.org import Org
from simulator.reports import charts
from simulator.reports.plots import forecast_chart, months_chart, tornado_chart

CSS = """
@page { size: A4; margin: 11mm 10mm; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 10.5px;
  color: #1b1b1b; margin: 0 auto; max-width: 760px; line-height: 1.35; }
h1 { font-size: 18px; margin: 0 0 2px; } h2 { font-size: 13px; margin: 10px 0 4px; }
.sub { color: #555; margin: 0 0 8px; }
.page { break-after: page; } .page:last-child { break-after: auto; }
.decision { border: 2px solid #1f5fa8; border-radius: 6px; padding: 8px 10px; margin: 6px 0; }
.decision .model { font-size: 16px; font-weight: 700; }
.decision ol { margin: 4px 0 0 16px; padding: 0; }
table { border-collapse: collapse; width: 100%; margin: 2px 0 6px; }
th, td { border-bottom: 1px solid #ddd; padding: 1.5px 4px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 4px 0; break-inside: avoid; } figure svg { width: 100%; height: auto; }
.small { font-size: 9px; color: #444; } .cols { display: flex; gap: 12px; }
.cols > div { flex: 1; min-width: 0; } a { color: inherit; }
.last { font-size: 9.5px; } .last td, .last th { padding: 1px 3px; }
.support { color: #1f5fa8; font-weight: 600; } .team { color: #c2332b; font-weight: 600; }
"""


ENVIRONMENT = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
# The template ships as package data next to this module.
PAGE = ENVIRONMENT.from_string(
    resources.files("simulator.reports").joinpath("finance.html").read_text(encoding="utf-8")
)
QUALITY = {
    "zipf_exponent": ("Zipf skew", "who writes again: higher, a few write most"),
    "zipf_deviance_per_class": (
        "skew fit, deviance",
        "per frequency class: about 1 fits, over 4 poor",
    ),
    "customers": ("customer population", "the Zipf population behind the senders seen"),
    "distinct_senders": ("customer senders seen", "distinct, over the months fitted"),
    "new_sender_share": ("new-sender share", "of customer mail, beyond the Zipf part"),
    "volume_growth_per_year": ("volume trend a year", "log-linear over the months"),
}


def _quality(fit: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The fit's quality in short lines; the full notes are in `fit --format json`."""
    values = {p["parameter"]: p for p in (fit or {}).get("parameters", [])}
    rows = []
    for key, (name, note) in QUALITY.items():
        if key in values:
            extra = values[key]["measured"]
            if key == "volume_growth_per_year":
                note = extra.split(":", 1)[-1].strip() if "R^2" in extra else extra
            rows.append({"name": name, "value": values[key]["value"], "note": note})
    return rows


def money(value: float) -> str:
    return f"{value:,.2f}"


def pct(value: float) -> str:
    return f"{value:+.0%}"


def ratio(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def _ledger(months: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        m["month"]: {
            **m,
            "summary": ", ".join(f"{count} {key}" for key, count in sorted(m["rows"].items())),
        }
        for m in months
    }


def _assumptions(data: dict[str, Any]) -> list[dict[str, str]]:
    """Each assumption the forecast rests on, and whether it was measured or chosen."""
    measured = {p["parameter"]: p["measured"] for p in (data["fit"] or {}).get("parameters", [])}
    fitted = data["scenario"]["source"].startswith("fitted")
    traffic = data["scenario"]["traffic"]
    rows = []
    for key, name in (
        ("emails", "emails per 30 days"),
        ("customers", "customers (population)"),
        ("zipf_exponent", "Zipf skew"),
        ("new_sender_share", "new-sender share"),
        ("internal_share", "colleagues' share"),
        ("reply_share", "reply share"),
        ("cc_per_message", "Cc per message"),
    ):
        # The month span only: the full note is in `fit --format json`.
        how = (
            f"measured ({data['fit']['span']})"
            if fitted and key in measured
            else f"chosen: {data['scenario']['source']}"
        )
        rows.append({"name": name, "value": f"{traffic[key]:g}", "how": how})
    noise = sum(traffic["noise"].values())
    rows.append(
        {
            "name": "noise share",
            "value": f"{noise:.3g}",
            "how": "measured by reason" if fitted else "chosen: the scenario",
        }
    )
    f = data["forecast"]
    rows.append(
        {
            "name": "volume growth a year",
            "value": pct(f["volume_growth_per_year"]),
            "how": "chosen (--growth)",
        }
    )
    rows.append(
        {
            "name": "customer growth a year",
            "value": pct(f["customer_growth_per_year"]),
            "how": "chosen (--customer-growth)",
        }
    )
    rows.append({"name": "term", "value": f"{f['months']} months", "how": "chosen (--months)"})
    rules = data["licensing"]
    # The org's rules in one row each pair: they are chosen, in the org file.
    rows.append(
        {
            "name": "licensing rules",
            "value": f"{rules['team_counts_from']}, {rules['billing']}",
            "how": f"chosen: {data['org_file']}; inactivity "
            + (f"{rules['inactive_after_days']} days" if rules["inactive_after_days"] else "never"),
        }
    )
    rows.append(
        {
            "name": "intake rules",
            "value": rules["unknown_senders"],
            "how": f"chosen: Cc users {'on' if rules['create_users_from_cc'] else 'off'}, "
            f"automatic email {'on' if rules['notify'] else 'off'}",
        }
    )
    return rows


def _halves(months: list[dict[str, Any]]) -> list[tuple[int, list[dict[str, Any]]]]:
    """A long term's months in two columns side by side, so the page stays one page."""
    if len(months) <= 12:
        return [(0, months)]
    half = (len(months) + 1) // 2
    return [(0, months[:half]), (half, months[half:])]


def page(data: dict[str, Any], org: Org) -> str:
    """The report as one self-contained HTML document."""
    history = months_chart(data["months"], org, links=True)
    sensitivity = data["forecast"]["sensitivity"]
    nearest = next((a for a in sensitivity["assumptions"] if a["flips"]), None)
    quality = _quality(data["fit"])
    return PAGE.render(
        d=data,
        r=data["report"],
        css=Markup(CSS),
        money=money,
        pct=pct,
        ratio=ratio,
        nearest=nearest,
        ledger=_ledger(data["ledger_months"]),
        history_chart=Markup(charts.svg(history)),
        forecast_chart=Markup(charts.svg(forecast_chart(data["forecast"], links=True))),
        tornado=Markup(charts.svg(tornado_chart(sensitivity, links=True))),
        fit_quality=quality,
        forecast_parts=_halves(data["forecast"]["forecasts"][0]["months"]),
        assumptions=_assumptions(data),
    )
