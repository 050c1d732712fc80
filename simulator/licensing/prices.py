"""Price rules: how a licensing model turns a seat count into money.

Flat, step and graduated shapes with free allowances, the two pricing tables of
the org file, and the licensing rules that say when a Team user is billed. Pure
values and arithmetic; the org loader builds these from TOML.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PriceShape(StrEnum):
    FLAT = "flat"  # every billable seat at the unit price
    STEP = "step"  # pay for the whole band the count falls in, at that band's price
    GRADUATED = "graduated"  # each seat at the price of the band it falls in


@dataclass(frozen=True)
class Band:
    up_to: int | None  # the band's last seat; None: no upper end (only the last band)
    price: float


@dataclass(frozen=True)
class PriceRule:
    """How one model turns seats into money: shape, bands and free seats."""

    unit_price: float
    shape: PriceShape = PriceShape.FLAT
    bands: tuple[Band, ...] = ()
    free: int = 0  # the first N seats cost nothing


@dataclass(frozen=True)
class Pricing:
    currency: str = "USD"
    period: str = "month"
    support_per_agent: float = 25.0
    team_per_user: float = 10.0
    support_rule: PriceRule | None = None
    team_rule: PriceRule | None = None

    @property
    def support(self) -> PriceRule:
        return self.support_rule or PriceRule(self.support_per_agent)

    @property
    def team(self) -> PriceRule:
        return self.team_rule or PriceRule(self.team_per_user)


class TeamCountsFrom(StrEnum):
    CREATION = "creation"  # a Team user is billed from the moment the account exists
    FIRST_EMAIL = "first_email"  # ... from their first counted email (the ledger's rule)
    FIRST_LOGIN = "first_login"  # ... only once they log in: email-only users are free


class Billing(StrEnum):
    MONTHLY = "monthly"  # each month bills the highest count reached in that month
    ANNUAL = "annual"  # the highest count reached so far in the contract year


@dataclass(frozen=True)
class LicensingRules:
    team_counts_from: TeamCountsFrom = TeamCountsFrom.FIRST_EMAIL
    inactive_after_days: int = 0  # a Team seat lapses after N days without mail; 0 = never
    billing: Billing = Billing.MONTHLY


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
