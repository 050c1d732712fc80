"""The comparison a report prints: figures per model, the recommendation, and the
sentences that explain it.

Pure: reports pass in seat counts read from the ledger and the evidence the
vendor's rule of thumb asks about, so every sentence can be traced to ledger rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.licensing.costs import (
    EQUAL,
    SUPPORT,
    TEAM,
    ModelCost,
    breakeven_team_seats,
    cheaper_model,
    model_cost,
    money,
)
from simulator.licensing.prices import PriceRule, PriceShape, Pricing


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
    extras = [
        f"the first {rule.free} free" if rule.free else "",
        f"free while at most {rule.free_plan}" if rule.free_plan else "",
        f"in blocks of {rule.block}" if rule.block > 1 else "",
        f"at least {rule.minimum} billed" if rule.minimum else "",
    ]
    terms = "".join(f", {extra}" for extra in extras if extra)
    if rule.shape is PriceShape.FLAT and not terms:
        how = f"x {money(model.unit_price, pricing)}"
    else:
        how = f"({rule.shape.value} prices{terms})"
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
