"""How volume changes the bill: seats and cost per model across monthly volumes.

Each volume runs the scenario's seeded traffic for `months` periods of its
`days` (a period is a month of traffic: `emails` set to the volume each
period), with the customer base carried over from one period to the next. The
plan's model of intake (`traffic.py`) decides who becomes a user and why,
without building or storing a message; the seat engine (`licensing.seats`)
turns that into seats and bills by calendar month under the org's
`[licensing]` rules, exactly as `report` reads the ledger the pipeline wrote.
A property test holds the two paths equal.

`run_months` is the multi-month API: one volume, N periods, every month's bill.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.domain import Role
from simulator.errors import ConfigError
from simulator.licensing import advice, seats
from simulator.licensing.costs import EQUAL, SUPPORT, TEAM, money
from simulator.org import Org
from simulator.reports.columns import flat_month
from simulator.simulation.traffic import SeatState, TrafficParams, TrafficPlan

Row = dict[str, Any]
Advance = Callable[[int], None]
MAX_VOLUME = 10_000_000
MAX_MONTHS = 120
TICK = 1 << 16  # messages between two progress updates


def parse_volumes(text: str) -> list[int]:
    """'100,1000,1e4' -> [100, 1000, 10000]; positive whole numbers, sorted, no repeats."""
    volumes = set()
    for part in text.split(","):
        try:
            value = float(part.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"volumes are numbers such as 100,1000,1e4, not {part!r}") from None
        if value != int(value) or not 1 <= value <= MAX_VOLUME:
            raise ConfigError(f"each volume must be a whole number from 1 to {MAX_VOLUME:,}")
        volumes.add(int(value))
    return sorted(volumes)


def check_months(months: int) -> int:
    if not 1 <= months <= MAX_MONTHS:
        raise ConfigError(f"months must be a whole number from 1 to {MAX_MONTHS}")
    return months


@dataclass(frozen=True)
class MonthsResult:
    """One volume run for N periods: the plan's seats, and every calendar month's bill."""

    params: TrafficParams  # the whole span: emails and days are the volume times N
    state: SeatState
    bills: list[seats.MonthBill]
    comparison: advice.Comparison  # seats held at the end of the span, as `report` has it

    @property
    def contract(self) -> tuple[float, float]:
        support = round(sum(b.support.cost for b in self.bills), 2)
        team = round(sum(b.team.cost for b in self.bills), 2)
        return support, team


def span(params: TrafficParams, volume: int, months: int) -> TrafficParams:
    """The traffic of `months` periods at `volume` emails each."""
    return dataclasses.replace(params, emails=volume * months, days=params.days * months)


def run_months(
    params: TrafficParams, org: Org, months: int = 1, advance: Advance | None = None
) -> MonthsResult:
    """`params.emails` per period for `months` periods, billed by calendar month."""
    whole = span(params, params.emails, months)
    plan = TrafficPlan(whole, org)
    for index, _ in enumerate(plan, 1):
        if advance is not None and index % TICK == 0:
            advance(TICK)
    if advance is not None:
        advance(whole.emails % TICK)
    return evaluate(whole, org, plan.seats)


def evaluate(params: TrafficParams, org: Org, state: SeatState) -> MonthsResult:
    """Bills and the comparison for a plan that has run: the engine, the org's rules."""
    start, end = seats.stamp(params.start), seats.stamp(params.end)
    people = state.book.people()
    months = seats.months_between(start, max(start, end - 1))
    bills = seats.bill(org.pricing, org.licensing, state.book.support_spans(), people, months)
    rules = org.licensing
    team_seats = seats.seats_at((s for p in people for s in seats.team_spans(p, rules)), end)
    comparison = advice.compare(
        seats.seats_at(state.book.support_spans(), end),
        team_seats,
        org.pricing,
        evidence(state, org, seats.notified_seats_at(people, rules, end)),
    )
    return MonthsResult(params, state, bills, comparison)


def evidence(state: SeatState, org: Org, from_notifications: int) -> advice.Evidence:
    """What the rule of thumb asks, from the plan's users (as the report counts them)."""
    customers = {u for u in state.counted_senders if state.roles.get(u) == Role.CUSTOMER.value}
    shared = state.shared if state.shared in customers else None
    return advice.Evidence(
        customers_submitting=len(customers - {shared}),
        customers_notified=len(state.customers_notified),
        team_seats_from_notifications=from_notifications,
        customers_by_web_form=0,  # the plan's traffic is all email
        strangers_shared=len(state.shared_strangers) if shared else 0,
        shared_user=org.intake.shared_user if shared else "",
    )


def row(volume: int, result: MonthsResult, months: int) -> Row:
    c = result.comparison
    support_total, team_total = result.contract
    contract_cheaper = _cheaper(support_total, team_total)
    return {
        "volume": volume,
        "support": {"seats": c.support.seats, "cost": c.support.cost},
        "team": {
            "seats": c.team.seats,
            "cost": c.team.cost,
            "counted_senders": len(result.state.counted_senders),
            "seats_from_notifications": c.team.seats - c.team_without_notifications.seats,
        },
        "cheaper_model": c.cheaper_model,
        "margin": round(abs(c.support.cost - c.team.cost), 2),
        "breakeven_team_seats": c.breakeven_team_seats,
        "recommended_model": c.recommended_model,
        "reasons": c.reasons,
        "months": [b.as_row() for b in result.bills],
        "contract": {
            "months": months,
            "support": support_total,
            "team": team_total,
            "cheaper_model": contract_cheaper,
            "margin": round(abs(support_total - team_total), 2),
        },
    }


def _cheaper(support: float, team: float) -> str:
    if math.isclose(support, team):
        return EQUAL
    return SUPPORT if support < team else TEAM


def winner(r: Row) -> str:
    """The model a volume's row favours: the contract's over several months, else the
    bill for the seats held at the end, as `report` prices them."""
    return r["contract"]["cheaper_model"] if r["contract"]["months"] > 1 else r["cheaper_model"]


def sweep(
    params: TrafficParams,
    org: Org,
    volumes: list[int],
    months: int = 1,
    advance: Advance | None = None,
) -> Row:
    """Every volume's row, the crossover exact to the message, and a recommendation."""

    def at(volume: int, tick: Advance | None = None) -> Row:
        result = run_months(dataclasses.replace(params, emails=volume), org, months, tick)
        return row(volume, result, months)

    rows = [at(v, advance) for v in volumes]
    cross = crossover(rows, lambda v: at(v))
    sides = cross.pop("rows") if cross else []
    return {
        "months": months,
        "volumes": rows,
        "crossover": cross,
        "recommendation": recommendation(rows, cross, org),
        "crossover_rows": sides,
    }


def with_crossover(data: Row) -> list[Row]:
    """The swept rows and the two on either side of the crossover, in volume order,
    each marked: "below", "above" or ""."""
    marked = {r["volume"]: {**r, "crossover": ""} for r in data["volumes"]}
    for side, r in zip(("below", "above"), data.get("crossover_rows", []), strict=False):
        marked[r["volume"]] = {**r, "crossover": side}
    return [marked[v] for v in sorted(marked)]


def crossover(rows: list[Row], evaluate_at: Callable[[int], Row]) -> Row | None:
    """Where the cheaper model first changes: the last volume won by one model and
    the next by the other, found by bisection between the two swept volumes around
    it (traffic of a larger volume starts with the same senders, so seats grow with
    it). None when one model wins, or ties, at every volume."""
    for before, after in itertools.pairwise(rows):
        if winner(before) == winner(after):
            continue
        low, high = before, after
        while high["volume"] - low["volume"] > 1:
            middle = evaluate_at((low["volume"] + high["volume"]) // 2)
            if winner(middle) == winner(low):
                low = middle
            else:
                high = middle
        return {
            "volume": high["volume"],  # the first volume on the other side
            "below": _side(low),
            "above": _side(high),
            "rows": [low, high],  # the two volumes in full; `with_crossover` shows them
        }
    return None


def _side(r: Row) -> Row:
    return {
        "volume": r["volume"],
        "cheaper_model": winner(r),
        "support_seats": r["support"]["seats"],
        "team_seats": r["team"]["seats"],
        "support_cost": r["contract"]["support"]
        if r["contract"]["months"] > 1
        else r["support"]["cost"],
        "team_cost": r["contract"]["team"] if r["contract"]["months"] > 1 else r["team"]["cost"],
    }


def crossover_sentence(cross: Row | None, rows: list[Row], org: Org) -> str:
    """The crossover in words, from the same figures as the JSON and CSV."""
    if not rows:
        return "no volume swept"
    if cross is None:
        won = winner(rows[0])
        low, high = rows[0]["volume"], rows[-1]["volume"]
        span_text = (
            f"from {low:,} to {high:,} emails/month" if low != high else f"{low:,} emails/month"
        )
        if won == EQUAL:
            return f"no crossover: both models cost the same at every volume {span_text}"
        return f"no crossover: {won.title()} is cheaper at every volume {span_text}"
    below, above = cross["below"], cross["above"]
    pricing = org.pricing

    def side(s: Row) -> str:
        return (
            f"at {s['volume']:,} emails/month {_name(s['cheaper_model'])} "
            f"(Support {s['support_seats']} agent(s) = {money(s['support_cost'], pricing)}, "
            f"Team {s['team_seats']} user(s) = {money(s['team_cost'], pricing)})"
        )

    return f"crossover at {cross['volume']:,} emails/month: {side(below)}; {side(above)}"


def _name(model: str) -> str:
    return "both cost the same" if model == EQUAL else f"{model.title()} is cheaper"


def recommendation(rows: list[Row], cross: Row | None, org: Org) -> Row:
    """One model for the sweep, with the reasons: the advice at every volume agrees,
    or the crossover says where it changes."""
    if not rows:
        return {"model": None, "reasons": []}
    models = [r["recommended_model"] for r in rows]
    reasons = [crossover_sentence(cross, rows, org)]
    last = rows[-1]  # the rule of thumb as the advice words it, at the highest volume
    if len(set(models)) == 1:
        model = models[0]
        reasons.append(
            f"the advice is {model.title()} at every volume; at {last['volume']:,} "
            f"emails/month: {last['reasons'][0]}"
        )
    else:
        model = rows[-1]["recommended_model"]
        changes = [f"{r['volume']:,}: {r['recommended_model'].title()}" for r in rows]
        reasons.append("the advice changes with volume (" + ", ".join(changes) + ")")
        reasons.append(f"at the highest volume: {rows[-1]['reasons'][0]}")
    return {"model": model, "reasons": reasons}


def flat_rows(rows: list[Row]) -> list[Row]:
    """One level of keys, for CSV and tables."""
    return [
        {
            "volume": r["volume"],
            "support_seats": r["support"]["seats"],
            "support_cost": r["support"]["cost"],
            "team_seats": r["team"]["seats"],
            "team_cost": r["team"]["cost"],
            "cheaper_model": r["cheaper_model"],
            "margin": r["margin"],
            "contract_support": r["contract"]["support"],
            "contract_team": r["contract"]["team"],
            "recommended_model": r["recommended_model"],
            "crossover": r.get("crossover", ""),
        }
        for r in rows
    ]


def month_rows(rows: list[Row]) -> list[Row]:
    """Every volume's months, one level of keys."""
    return [{"volume": r["volume"], **flat_month(m)} for r in rows for m in r["months"]]
