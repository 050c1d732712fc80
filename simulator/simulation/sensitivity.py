"""What flips the decision: for each assumption, how far it must move before the
other model costs less over the term.

The decision is the model with the lower term total under the first price
book (`forecast.decision`). Each assumption is moved over a stated range;
where the decision at one end of the range differs, a bisection between the
assumption's current value and that end finds the flip point to 1 % of the
move (so `holds_until`, the nearest tested value that does not flip, is
within 1 % of `flip_value`, the nearest that does). Switches (Cc creation,
notifications) and the unknown-sender policy are tried at each of their
values. Assumptions that change who writes in rerun the traffic plan on the
seat engine; prices and inactivity only rebill the same plan.

The ends of each range also give the tornado: the term's Team-minus-Support
cost at the low and the high end; a bar over zero flips the decision.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.org import Org, UnknownSenders
from simulator.simulation import forecast as fc

RESOLUTION = 0.01  # of the move from the current value: the flip point's precision
SCALE_RANGE = 4.0  # customers and volume: tried from a quarter to four times
MAX_DAYS = 730
MAX_STEPS = 24


@dataclass(frozen=True)
class Outcome:
    support: float
    team: float

    @property
    def gap(self) -> float:
        """Team minus Support over the term: below 0 Team is cheaper."""
        return round(self.team - self.support, 2)

    @property
    def model(self) -> str:
        return fc.cheaper(self.support, self.team)


class Study:
    """One forecast's question and its base plan; evaluates moved assumptions."""

    def __init__(self, terms: fc.Terms, book: fc.PriceBook) -> None:
        self.terms = terms
        self.book = book
        self.org = dataclasses.replace(terms.org, pricing=book.pricing)
        self.base_plan = fc.seat_plan(dataclasses.replace(terms, org=self.org))
        self.base = self.outcome()
        self.runs = 1

    def outcome(self, terms: fc.Terms | None = None, org: Org | None = None) -> Outcome:
        """The term's totals: a new plan when `terms` is given, else a rebill of the base."""
        if terms is not None:
            self.runs += 1
            plan = fc.seat_plan(terms)
            result = fc.bills(plan, terms.org)
        else:
            result = fc.bills(self.base_plan, org or self.org)
        return Outcome(*fc.totals(result))

    def flipped(self, outcome: Outcome) -> bool:
        """The other model is now cheaper, or both cost the same."""
        return outcome.model != self.base.model

    # -- the moves -------------------------------------------------------------------

    def with_params(self, **changes: Any) -> fc.Terms:
        params = dataclasses.replace(self.terms.params, **changes)
        return dataclasses.replace(self.terms, params=params, org=self.org)

    def with_org(self, org: Org) -> fc.Terms:
        return dataclasses.replace(self.terms, org=org)


@dataclass(frozen=True)
class Axis:
    """A numeric assumption: its current value, its tested range and how to apply it."""

    key: str
    label: str
    current: float
    low: float
    high: float
    evaluate: Callable[[float], Outcome]
    text: Callable[[float], str]
    whole: bool = False  # days: whole numbers only
    log: bool = False  # scale factors: bisect on a log scale


def _search(study: Study, axis: Axis) -> dict[str, Any]:
    low_out, high_out = axis.evaluate(axis.low), axis.evaluate(axis.high)
    ends = {"low": _end(axis.low, axis.text, low_out), "high": _end(axis.high, axis.text, high_out)}
    found: list[tuple[float, float, float]] = []  # (distance, holds_until, flip)
    for end, out in ((axis.low, low_out), (axis.high, high_out)):
        if end == axis.current or not study.flipped(out):
            continue
        holds, flips = _bisect(study, axis, axis.current, end)
        distance = abs(_position(axis, flips) - _position(axis, axis.current))
        found.append((distance, holds, flips))
    row = {
        "key": axis.key,
        "label": axis.label,
        "kind": "number",
        "current": axis.current,
        "current_text": axis.text(axis.current),
        **ends,
    }
    if not found:
        return {
            **row,
            "flips": False,
            "flip_value": None,
            "holds_until": None,
            "move": None,
            "flip_text": f"does not flip from {axis.text(axis.low)} to {axis.text(axis.high)}",
        }
    _, holds, flips = min(found)
    return {
        **row,
        "flips": True,
        "flip_value": flips,
        "holds_until": holds,
        "move": _move(axis.current, flips),
        "flip_text": f"flips at {axis.text(flips)} (holds at {axis.text(holds)})",
    }


def _position(axis: Axis, value: float) -> float:
    return math.log(max(value, 1e-12)) if axis.log else value


def _bisect(study: Study, axis: Axis, holds: float, flips: float) -> tuple[float, float]:
    """Narrow [holds, flips] until it is within RESOLUTION of the move from the
    current value to the flip (a whole day for days)."""
    start = _position(axis, axis.current)
    for _ in range(MAX_STEPS):
        a, b = _position(axis, holds), _position(axis, flips)
        if axis.whole and abs(flips - holds) <= 1:
            break
        if not axis.whole and abs(b - a) <= RESOLUTION * abs(b - start):
            break
        middle = (a + b) / 2
        value = math.exp(middle) if axis.log else middle
        if axis.whole:
            value = float(round(value))
            if value in (holds, flips):
                break
        if study.flipped(axis.evaluate(value)):
            flips = value
        else:
            holds = value
    return holds, flips


def _move(current: float, flip: float) -> float:
    """How far the flip is from now, relative to the current value."""
    if current == 0:
        return math.inf if flip else 0.0
    return abs(flip / current - 1)


def _end(value: float, text: Callable[[float], str], outcome: Outcome) -> dict[str, Any]:
    return {
        "value": value,
        "text": text(value),
        "support": outcome.support,
        "team": outcome.team,
        "team_minus_support": outcome.gap,
        "cheaper_model": outcome.model,
    }


def _choices(
    study: Study, key: str, label: str, current: str, options: dict[str, Org]
) -> dict[str, Any]:
    """A switch or a policy: the decision at each other value."""
    outcomes = {name: study.outcome(study.with_org(org)) for name, org in options.items()}
    outcomes[current] = study.base
    flipping = [name for name, out in outcomes.items() if name != current and study.flipped(out)]
    ordered = sorted(outcomes.items(), key=lambda item: item[1].gap)
    low, high = ordered[0], ordered[-1]
    return {
        "key": key,
        "label": label,
        "kind": "choice",
        "current": current,
        "current_text": current,
        "low": _end_choice(*low),
        "high": _end_choice(*high),
        "flips": bool(flipping),
        "flip_value": flipping[0] if flipping else None,
        "holds_until": current if flipping else None,
        "move": 1.0 if flipping else None,
        "flip_text": (
            f"flips with {', '.join(flipping)}" if flipping else "no other value flips it"
        ),
        "values": {name: _end_choice(name, out) for name, out in outcomes.items()},
    }


def _end_choice(name: str, outcome: Outcome) -> dict[str, Any]:
    return {
        "value": name,
        "text": name,
        "support": outcome.support,
        "team": outcome.team,
        "team_minus_support": outcome.gap,
        "cheaper_model": outcome.model,
    }


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _times(value: float) -> str:
    return f"x{value:.3g}"


def axes(study: Study) -> list[Axis]:
    terms, org = study.terms, study.org
    p = terms.params
    ratio = fc.price_ratio(org.pricing)
    breakeven = fc.breakeven_ratio(fc.bills(study.base_plan, org), org.pricing) or ratio
    # The range always reaches past the break-even, so the price ratio's flip is found.
    ratio_low = min(ratio / SCALE_RANGE, breakeven / 2)
    ratio_high = max(ratio * SCALE_RANGE, breakeven * 2)

    def at_ratio(value: float) -> Outcome:
        factor = value / ratio if ratio else 1.0
        return study.outcome(
            org=dataclasses.replace(org, pricing=fc.scale_team_prices(org.pricing, factor))
        )

    def at_days(value: float) -> Outcome:
        days = 0 if value > MAX_DAYS else int(value)  # beyond the range: never lapses
        rules = dataclasses.replace(org.licensing, inactive_after_days=days)
        return study.outcome(org=dataclasses.replace(org, licensing=rules))

    share_top = min(
        1.0 - p.reply_share - p.internal_share,
        max(3 * p.new_sender_share, p.new_sender_share + 0.2),
    )
    days = org.licensing.inactive_after_days
    return [
        Axis(
            "price_ratio",
            "Team/Support price ratio",
            ratio,
            ratio_low,
            ratio_high,
            at_ratio,
            lambda v: f"{v:.4g}",
            log=True,
        ),
        Axis(
            "new_sender_share",
            "New-sender share",
            p.new_sender_share,
            0.0,
            round(share_top, 4),
            lambda v: study.outcome(study.with_params(new_sender_share=v)),
            _percent,
        ),
        Axis(
            "inactive_after_days",
            "Inactivity days before a seat lapses",
            float(days or MAX_DAYS + 1),
            1.0,
            float(MAX_DAYS + 1),
            at_days,
            lambda v: "never" if v > MAX_DAYS else f"{v:.0f} day(s)",
            whole=True,
        ),
        Axis(
            "customers",
            "Customers (population)",
            1.0,
            1 / SCALE_RANGE,
            SCALE_RANGE,
            lambda v: study.outcome(study.with_params(customers=max(1, round(p.customers * v)))),
            lambda v: f"{_times(v)} ({max(1, round(p.customers * v)):,})",
            log=True,
        ),
        Axis(
            "volume",
            "Mail volume",
            1.0,
            1 / SCALE_RANGE,
            SCALE_RANGE,
            lambda v: study.outcome(study.with_params(emails=max(1, round(p.emails * v)))),
            lambda v: f"{_times(v)} ({max(1, round(p.emails * v)):,} per {p.days:g} days)",
            log=True,
        ),
    ]


def switches(study: Study) -> list[dict[str, Any]]:
    org = study.org
    intake, notify = org.intake, org.notify
    cc_now = "on" if intake.create_users_from_cc else "off"
    cc_other = "off" if intake.create_users_from_cc else "on"
    cc_org = dataclasses.replace(
        org,
        intake=dataclasses.replace(intake, create_users_from_cc=not intake.create_users_from_cc),
    )
    notify_now = "on" if notify.enabled else "off"
    notify_other = "off" if notify.enabled else "on"
    flipped_notify = dataclasses.replace(
        notify, acknowledge=not notify.enabled, notify_participants_on_reply=not notify.enabled
    )
    policies = {}
    for policy in UnknownSenders:
        if policy is intake.unknown_senders:
            continue
        shared = (
            intake.shared_user or f"unknown-senders@{org.intake_addresses[0].partition('@')[2]}"
        )
        changed = dataclasses.replace(
            intake,
            unknown_senders=policy,
            shared_user=shared if policy is UnknownSenders.SHARED_USER else intake.shared_user,
        )
        policies[policy.value] = dataclasses.replace(org, intake=changed)
    return [
        _choices(study, "cc_creation", "Users created from Cc", cc_now, {cc_other: cc_org}),
        _choices(
            study,
            "notifications",
            "Automatic email to customers",
            notify_now,
            {notify_other: dataclasses.replace(org, notify=flipped_notify)},
        ),
        _choices(
            study,
            "unknown_senders",
            "Unknown-sender policy",
            intake.unknown_senders.value,
            policies,
        ),
    ]


def _rank(row: dict[str, Any]) -> tuple[int, float, float]:
    """Flips first, nearest first; then by the width of the tornado bar."""
    width = abs(row["high"]["team_minus_support"] - row["low"]["team_minus_support"])
    return (0 if row["flips"] else 1, row["move"] if row["flips"] else 0.0, -width)


def sensitivity(terms: fc.Terms, book: fc.PriceBook) -> dict[str, Any]:
    """Every assumption's flip point, ranked, with the tornado's ends."""
    study = Study(terms, book)
    rows = [_search(study, axis) for axis in axes(study)] + switches(study)
    rows.sort(key=_rank)
    ratio = fc.breakeven_ratio(fc.bills(study.base_plan, study.org), study.org.pricing)
    return {
        "price_book": book.name,
        "currency": book.pricing.currency,
        "months": terms.months,
        "decision": study.base.model,
        "base": {
            "support": study.base.support,
            "team": study.base.team,
            "team_minus_support": study.base.gap,
        },
        "breakeven_price_ratio": ratio,
        "price_ratio": round(fc.price_ratio(study.org.pricing), 6),
        "plans_run": study.runs,
        "assumptions": rows,
    }


def decision_at(terms: fc.Terms, book: fc.PriceBook, key: str, value: Any) -> str:
    """The decision with one assumption set to `value` (as the JSON gives it): what the
    tests use to check a flip point from the outside."""
    study = Study(terms, book)
    if key in {a.key for a in axes(study)}:
        axis = next(a for a in axes(study) if a.key == key)
        return axis.evaluate(float(value)).model
    row = next(r for r in switches(study) if r["key"] == key)
    return str(row["values"][value]["cheaper_model"])


def flat_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "rank": index,
            "assumption": r["label"],
            "now": r["current_text"],
            "flips": r["flips"],
            "flip_point": r["flip_text"],
            "low": f"{r['low']['text']}: {r['low']['team_minus_support']:,.2f}",
            "high": f"{r['high']['text']}: {r['high']['team_minus_support']:,.2f}",
        }
        for index, r in enumerate(data["assumptions"], 1)
    ]


SENSITIVITY_COLUMNS = ["rank", "assumption", "now", "flips", "flip_point", "low", "high"]


def summary(data: dict[str, Any]) -> str:
    """The sensitivity in one sentence, from the same figures as the JSON."""
    ratio = data["breakeven_price_ratio"]
    nearest = next((a for a in data["assumptions"] if a["flips"]), None)
    first = (
        f"the nearest flip: {nearest['label']} {nearest['flip_text']}"
        if nearest
        else "no assumption flips it within the ranges tried"
    )
    tie = "" if ratio is None else f"; the models tie at a Team/Support price ratio of {ratio:.4g}"
    return f"{data['decision'].title()} is cheaper over {data['months']} months; {first}{tie}"
