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
    most_within,
)
from simulator.licensing.prices import PriceRule, PriceShape, Pricing, bills_rise, price


@dataclass(frozen=True)
class Evidence:
    """What the vendor's rule of thumb asks about the organisation's intake."""

    customers_submitting: int  # customer users with at least one counted email
    customers_notified: int = 0  # customers who receive automatic email updates
    # Team seats held only because the system emailed them (never wrote in themselves).
    team_seats_from_notifications: int = 0
    customers_by_web_form: int = 0  # of customers_submitting, those who used only the web form
    strangers_shared: int = 0  # distinct strangers whose mail went to the shared account
    shared_user: str = ""  # that account's address


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
    customers_in_loop = (
        evidence.customers_submitting > 0
        or evidence.customers_notified > 0
        or evidence.strangers_shared > 0
    )
    recommended = SUPPORT if customers_in_loop else (TEAM if cheaper == EQUAL else cheaper)
    notified = min(evidence.team_seats_from_notifications, team_seats)
    # Through the price shape: with free seats or bands a seat is not the unit price.
    without = model_cost(team_seats - notified, pricing.team_per_user, pricing.team)
    reasons = [
        _rule_of_thumb(evidence),
        _figures(support, team, pricing),
        _breakeven_sentence(team, support, breakeven, pricing),
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
    by_form = min(evidence.customers_by_web_form, evidence.customers_submitting)
    by_email = evidence.customers_submitting - by_form
    if by_email:
        parts.append(f"{by_email} customer(s) submitted issues by email")
    if by_form:
        parts.append(f"{by_form} customer(s) submitted issues through the web form")
    if evidence.strangers_shared:
        account = f" {evidence.shared_user}" if evidence.shared_user else ""
        parts.append(
            f"{evidence.strangers_shared} stranger(s) wrote in through the shared account{account}"
        )
    if evidence.customers_notified:
        parts.append(f"{evidence.customers_notified} customer(s) receive automatic email updates")
    if parts:
        return (
            " and ".join(parts) + ": the vendor's rule of thumb points to Support, "
            "where customers are free users and only agents are paid seats"
        )
    return (
        "no customer submitted an issue or receives automatic updates: the vendor's rule "
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


def _breakeven_sentence(
    team: ModelCost, support: ModelCost, breakeven: int | None, pricing: Pricing
) -> str:
    """Where Team gets dearer than Support, every figure through the price shape."""
    per, rule = pricing.period, pricing.team
    if breakeven is None:
        return "Team seats are free at these prices, so Team never costs more"
    if team.cost <= support.cost + 1e-9:
        tip = next_dearer(team.seats, support.cost, rule)
        return (
            f"Team stays no dearer than Support up to {breakeven} user(s); "
            f"{tip - team.seats} more user(s) would tip it: {tip} user(s) cost "
            f"{money(price(tip, rule), pricing)}/{per} against Support's "
            f"{money(support.cost, pricing)}/{per}"
        )
    marginal = round(price(team.seats + 1, rule) - team.cost, 2)
    return (
        f"Team passed the break-even of {breakeven} user(s) by {team.seats - breakeven}; "
        f"the next user adds {money(marginal, pricing)}/{per}"
    )


def next_dearer(seats: int, bill: float, rule: PriceRule) -> int:
    """The smallest count above `seats` that costs more than `bill` under `rule`."""
    if not bills_rise(rule):
        count = seats + 1
        while price(count, rule) <= bill + 1e-9:
            count += 1
        return count
    # The bill never falls as the count grows: double the step until it tips, then
    # bisect, so a gap of 10^5 seats costs a few dozen prices, not 10^5.
    low, high = seats, seats + 1  # low: not above `bill` (or `seats` itself)
    while price(high, rule) <= bill + 1e-9:
        low, high = high, seats + 2 * (high - seats)
    return most_within(low, high, bill, rule) + 1
