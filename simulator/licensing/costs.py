"""Licensing arithmetic: what a model costs, which is cheaper, and where they break even.

Nothing here reads or writes the database; reports pass in counts taken from
the ledger, so every figure can be traced back to ledger rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.licensing.prices import PriceRule, PriceShape, Pricing, cost, price, price_drops

SUPPORT = "support"
TEAM = "team"
EQUAL = "equal"


@dataclass(frozen=True)
class ModelCost:
    seats: int
    unit_price: float
    cost: float


def model_cost(seats: int, unit_price: float, rule: PriceRule | None = None) -> ModelCost:
    amount = price(seats, rule) if rule else cost(seats, unit_price)
    return ModelCost(seats=seats, unit_price=unit_price, cost=amount)


def breakeven_team_seats(support_seats: int, pricing: Pricing) -> int | None:
    """The most Team seats that cost no more than Support's bill; None if Team is free."""
    rule, support_bill = pricing.team, price(support_seats, pricing.support)
    plain = not (rule.free_plan or rule.minimum or rule.block > 1)
    if rule.shape is PriceShape.FLAT and plain:
        if rule.unit_price <= 0:
            return None
        # A small epsilon keeps 75.0 / 2.5 from landing on 29.999999.
        return rule.free + math.floor(support_bill / rule.unit_price + 1e-9)
    top = rule.bands[-1].price if rule.bands else rule.unit_price
    if top <= 0:
        return None  # seats above the last edge are free: Team never gets dearer
    # Bills are taken to rise with the count (a ladder that drops is warned about):
    # double, then bisect.
    high = 1
    while price(high, rule) <= support_bill + 1e-9:
        high *= 2
    return most_within(high // 2 if high > 1 else 0, high, support_bill, rule)


def most_within(low: int, high: int, bill: float, rule: PriceRule) -> int:
    """The largest count in [low, high) that costs at most `bill`, by bisection.

    `low` must cost at most `bill` (or be where counting starts) and `high` more, and
    the bill must not fall as the count grows between them."""
    while high - low > 1:
        middle = (low + high) // 2
        if price(middle, rule) <= bill + 1e-9:
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


def pricing_warnings(pricing: Pricing) -> list[str]:
    """One sentence per price ladder that bills less for more seats, with the figures."""
    found = []
    for model, rule, noun in ((SUPPORT, pricing.support, "agent"), (TEAM, pricing.team, "user")):
        for seats, bill, next_bill in price_drops(rule):
            found.append(
                f"{model} prices bill {money(bill, pricing)} for {seats} {noun}(s) but "
                f"{money(next_bill, pricing)} for {seats + 1}: this ladder charges less "
                "for more seats"
            )
    return found
