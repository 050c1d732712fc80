"""PNG charts: seats and cost across volumes (`sweep --plot`) and months (`report --by month`).

matplotlib runs on its Agg backend: no display is needed, and nothing else in
the package imports it, so commands without `--plot` never pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.errors import ConfigError
from simulator.org import Org

SUPPORT_COLOUR = "#1f77b4"
TEAM_COLOUR = "#d62728"
LINES = (
    ("support", "o-", SUPPORT_COLOUR, "Support (agents)"),
    ("team", "s-", TEAM_COLOUR, "Team (every user)"),
)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        # Charts are an extra, so the demo's install stays small.
        raise ConfigError("PNG charts need matplotlib: pip install 'intake-sim[plots]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _price_label(org: Org) -> str:
    p = org.pricing
    shape = {"support": p.support.shape.value, "team": p.team.shape.value}
    return (
        f"Support {p.support_per_agent:g} {p.currency}/agent ({shape['support']}), "
        f"Team {p.team_per_user:g} {p.currency}/user ({shape['team']}) per {p.period}"
    )


def _save(fig: Any, path: Path) -> None:
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def plot_sweep(rows: list[dict[str, Any]], crossing: float | None, org: Org, path: Path) -> None:
    plt = _pyplot()
    volumes = [r["volume"] for r in rows]
    fig, (seats, cost) = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, key, label in ((seats, "seats", "paid seats"), (cost, "cost", org.pricing.currency)):
        for model, style, colour, name in LINES:
            axis.plot(volumes, [r[model][key] for r in rows], style, color=colour, label=name)
        axis.set_xscale("log")
        axis.set_yscale("symlog", linthresh=10)
        axis.set_ylim(bottom=0)
        axis.set_xlabel("emails per month")
        axis.set_ylabel(label)
        axis.grid(True, which="major", alpha=0.3)
        if crossing is not None:
            axis.axvline(crossing, color="grey", linestyle="--")
            axis.annotate(
                f"crossover at {crossing:,.0f}/month",
                (crossing, 0.55),
                xycoords=("data", "axes fraction"),
                rotation=90,
                ha="right",
                fontsize=8,
                color="grey",
            )
    seats.set_title("Seats per month")
    cost.set_title(f"Cost per {org.pricing.period}")
    seats.legend(loc="upper left")
    fig.suptitle(f"{org.name}: how volume changes the bill\n{_price_label(org)}", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_months(rows: list[dict[str, Any]], org: Org, path: Path) -> None:
    plt = _pyplot()
    months = [r["month"] for r in rows]
    fig, (seats, people) = plt.subplots(1, 2, figsize=(11, 4.5))
    seats.plot(
        months,
        [r["support"]["billed_seats"] for r in rows],
        "o-",
        color=SUPPORT_COLOUR,
        label="Support billed seats",
    )
    seats.plot(
        months,
        [r["team"]["billed_seats"] for r in rows],
        "s-",
        color=TEAM_COLOUR,
        label="Team billed seats",
    )
    seats.set_title("Billed seats per month")
    seats.legend(loc="upper left")
    people.bar(months, [r["active_senders"] for r in rows], color="#7f7f7f", label="active senders")
    people.plot(months, [r["new_users"] for r in rows], "d-", color="#2ca02c", label="new users")
    people.set_title("Senders and new users per month")
    people.legend(loc="upper left")
    for axis in (seats, people):
        axis.tick_params(axis="x", rotation=45)
        axis.grid(True, alpha=0.3)
    fig.suptitle(f"{org.name}: seats over time\n{_price_label(org)}", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
