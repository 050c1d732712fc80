"""Licensing arithmetic: pure functions from seat counts and prices to advice.

Nothing here reads or writes the database; reports pass in counts taken from
the ledger, so every figure can be traced back to ledger rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.org import PriceRule, PriceShape, Pricing

SUPPORT = "support"
TEAM = "team"
EQUAL = "equal"


@dataclass(frozen=True)
class ModelCost:
    seats: int
    unit_price: float
    cost: float


@dataclass(frozen=True)
class Evidence:
    """What the vendor's rule of thumb asks about the organisation's intake."""

    customers_submitting: int  # customer users with at least one counted email
    customers_notified: int = 0  # customers who receive automatic email updates
    # Team seats held only because the system emailed them (never wrote in themselves).
    team_seats_from_notifications: int = 0


@dataclass(frozen=True)
class Comparison:
    support: ModelCost
    team: ModelCost
    breakeven_team_seats: int | None
    cheaper_model: str
    recommended_model: str
    reasons: list[str]
    team_without_notifications: ModelCost


def cost(seats: int, unit_price: float) -> float:
    return round(seats * unit_price, 2)


def price(seats: int, rule: PriceRule) -> float:
    """What `seats` cost under a rule: free seats first, then the shape's bands."""
    billable = max(0, seats - rule.free)
    if rule.shape is PriceShape.FLAT or billable == 0:
        return cost(billable, rule.unit_price)
    if rule.shape is PriceShape.STEP:
        # The band the count falls in is bought whole; the open last band per seat.
        band = next(b for b in rule.bands if b.up_to is None or billable <= b.up_to)
        return cost(band.up_to if band.up_to is not None else billable, band.price)
    total, lower = 0.0, 0
    for band in rule.bands:
        upper = billable if band.up_to is None else min(billable, band.up_to)
        total += max(0, upper - lower) * band.price
        lower = upper
        if lower >= billable:
            break
    return round(total, 2)


def model_cost(seats: int, unit_price: float, rule: PriceRule | None = None) -> ModelCost:
    amount = price(seats, rule) if rule else cost(seats, unit_price)
    return ModelCost(seats=seats, unit_price=unit_price, cost=amount)


def breakeven_team_seats(support_seats: int, pricing: Pricing) -> int | None:
    """The most Team seats that cost no more than Support's bill; None if Team is free."""
    rule, support_bill = pricing.team, price(support_seats, pricing.support)
    if rule.shape is PriceShape.FLAT:
        if rule.unit_price <= 0:
            return None
        # A small epsilon keeps 75.0 / 2.5 from landing on 29.999999.
        return rule.free + math.floor(support_bill / rule.unit_price + 1e-9)
    if all(b.price <= 0 for b in rule.bands[-1:]):
        return None  # seats above the last edge are free: Team never gets dearer
    # Banded prices only rise with the count: double, then bisect.
    high = 1
    while price(high, rule) <= support_bill + 1e-9:
        high *= 2
    low = high // 2 if high > 1 else 0
    while low < high - 1:
        middle = (low + high) // 2
        if price(middle, rule) <= support_bill + 1e-9:
            low = middle
        else:
            high = middle
    return low


def cheaper_model(support: ModelCost, team: ModelCost) -> str:
    if math.isclose(support.cost, team.cost):
        return EQUAL
    return SUPPORT if support.cost < team.cost else TEAM


def money(amount: float, pricing: Pricing) -> str:
    return f"{amount:,.2f} {pricing.currency}"


def compare(
    support_seats: int, team_seats: int, pricing: Pricing, evidence: Evidence
) -> Comparison:
    support = model_cost(support_seats, pricing.support_per_agent, pricing.support)
    team = model_cost(team_seats, pricing.team_per_user, pricing.team)
    breakeven = breakeven_team_seats(support_seats, pricing)
    cheaper = cheaper_model(support, team)
    customers_in_loop = evidence.customers_submitting > 0 or evidence.customers_notified > 0
    recommended = SUPPORT if customers_in_loop else (TEAM if cheaper == EQUAL else cheaper)
    notified = min(evidence.team_seats_from_notifications, team_seats)
    without = model_cost(team_seats - notified, pricing.team_per_user)
    reasons = [
        _rule_of_thumb(evidence),
        _figures(support, team, pricing),
        _breakeven_sentence(team_seats, breakeven, pricing),
    ]
    if notified:
        reasons.append(_notification_sentence(notified, team, without, pricing))
    return Comparison(support, team, breakeven, cheaper, recommended, reasons, without)


def _notification_sentence(
    notified: int, team: ModelCost, without: ModelCost, pricing: Pricing
) -> str:
    per = pricing.period
    return (
        f"automatic email updates made {notified} recipient(s) users who never wrote in: "
        f"under Team they are {notified} paid seat(s) "
        f"({money(team.cost - without.cost, pricing)}/{per}); without notifications Team "
        f"would bill {without.seats} user(s) = {money(without.cost, pricing)}/{per}, "
        "while under Support they stay free"
    )


def _rule_of_thumb(evidence: Evidence) -> str:
    parts = []
    if evidence.customers_submitting:
        parts.append(f"{evidence.customers_submitting} customer(s) submitted issues by email")
    if evidence.customers_notified:
        parts.append(f"{evidence.customers_notified} customer(s) receive automatic email updates")
    if parts:
        return (
            " and ".join(parts) + ": the vendor's rule of thumb points to Support, "
            "where customers are free users and only agents are paid seats"
        )
    return (
        "no customer submitted by email or receives automatic updates: the vendor's rule "
        "of thumb allows Team, the model for internal processes"
    )


def _bill(model: ModelCost, rule: PriceRule, noun: str, pricing: Pricing) -> str:
    if rule.shape is PriceShape.FLAT and not rule.free:
        how = f"x {money(model.unit_price, pricing)}"
    else:
        free = f", the first {rule.free} free" if rule.free else ""
        how = f"({rule.shape.value} prices{free})"
    return f"{model.seats} {noun}(s) {how} = {money(model.cost, pricing)}/{pricing.period}"


def _figures(support: ModelCost, team: ModelCost, pricing: Pricing) -> str:
    per = pricing.period
    sentence = (
        f"Support bills {_bill(support, pricing.support, 'agent', pricing)}; "
        f"Team bills {_bill(team, pricing.team, 'user', pricing)}"
    )
    difference = abs(support.cost - team.cost)
    if math.isclose(difference, 0.0):
        return sentence + "; both cost the same"
    cheaper = "Support" if support.cost < team.cost else "Team"
    return sentence + f"; {cheaper} is cheaper by {money(difference, pricing)}/{per}"


def _breakeven_sentence(team_seats: int, breakeven: int | None, pricing: Pricing) -> str:
    if breakeven is None:
        return "Team seats are free at these prices, so Team never costs more"
    headroom = breakeven - team_seats
    if headroom >= 0:
        return (
            f"Team stays no dearer than Support up to {breakeven} user(s); "
            f"{headroom} more counted sender(s) would tip it"
        )
    return (
        f"Team passed the break-even of {breakeven} user(s) by {-headroom}; "
        f"each further sender adds {money(pricing.team_per_user, pricing)}/{pricing.period}"
    )
