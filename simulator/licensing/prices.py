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
    # A free plan: the whole bill is 0 while the count is at most N; one more and
    # every seat is paid (Jira's "free up to 10 users"). Not the same as `free`.
    free_plan: int = 0
    block: int = 0  # seats are bought in blocks of N (0 or 1: one by one)
    minimum: int = 0  # a paid bill is for at least N seats


@dataclass(frozen=True)
class PricePair:
    """One list price offered two ways: month to month, or per month on a yearly contract."""

    monthly: float
    annual: float


@dataclass(frozen=True)
class Pricing:
    currency: str = "USD"
    period: str = "month"
    support_per_agent: float = 25.0
    team_per_user: float = 10.0
    support_rule: PriceRule | None = None
    team_rule: PriceRule | None = None
    # Published monthly/annual pairs; the unit prices above are the one the org's
    # `[licensing] billing` term pays (the loader picks it).
    support_pair: PricePair | None = None
    team_pair: PricePair | None = None
    # Light agents (Zendesk) or collaborators (Freshdesk) the plan includes free; the
    # directory's light agents past this many are billed as agents.
    light_agents_free: int = 0

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


def billable_seats(seats: int, rule: PriceRule) -> int:
    """The seats a rule charges for, before its shape: a free plan that has not been
    outgrown bills none; then the free seats come off, what is left is rounded up
    to whole blocks, and a paid bill is for at least the minimum."""
    if seats <= rule.free_plan:
        return 0
    billable = max(0, seats - rule.free)
    if billable == 0:
        return 0
    if rule.block > 1:
        billable = -(-billable // rule.block) * rule.block
    return max(billable, rule.minimum)


def bills_rise(rule: PriceRule) -> bool:
    """Whether `price` never falls as the count grows under `rule`: flat and graduated
    prices that are not negative (free seats, a free plan, blocks and a minimum only
    ever add). A step ladder buys whole bands and may bill less for more."""
    if rule.shape is PriceShape.FLAT:
        return rule.unit_price >= 0
    if rule.shape is PriceShape.GRADUATED:
        return all(band.price >= 0 for band in rule.bands)
    return False


def price(seats: int, rule: PriceRule) -> float:
    """What `seats` cost under a rule: the billable seats, then the shape's bands.

    The one function that bills a rule: reports, the sweep and every sentence of
    advice price seats through it."""
    billable = billable_seats(seats, rule)
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


def price_drops(rule: PriceRule) -> list[tuple[int, float, float]]:
    """(n, price of n, price of n + 1) wherever one more seat makes the bill smaller.

    Only a step ladder can do that, when the billable seats cross a band's edge
    (25 seats at 7.00 = 175.00, 26 at 6.00 = 156.00). Billable seats never fall as
    the count rises, so each edge is crossed at one count, found by bisection:
    exact, and as quick for an edge at a million seats as for one at ten.
    """
    if rule.shape is not PriceShape.STEP:
        return []
    drops = []
    for edge in (b.up_to for b in rule.bands if b.up_to is not None):
        low, high = 0, edge + rule.free + rule.free_plan + rule.block + rule.minimum + 1
        while low < high:  # the least count whose billable seats pass the edge
            middle = (low + high) // 2
            low, high = (
                (middle + 1, high) if billable_seats(middle, rule) <= edge else (low, middle)
            )
        before, after = price(low - 1, rule), price(low, rule)
        # A block can carry the count over two edges at once: one drop, named once.
        if low >= 2 and after < before and (low - 1, before, after) not in drops:
            drops.append((low - 1, before, after))
    return drops
