"""The contract forecast: seats and cost per month over a term, per price book.

A scenario's traffic (fitted by `fit`, or written by hand) runs for the term's
calendar months through the traffic plan, whose seats come from the one seat
engine (`licensing.seats`), the same engine the pipeline's ledger and `report`
use. Volume and the customer population may grow: a yearly rate, compounded
continuously, bends the plan's clock (messages come closer together as time
goes on) and widens the Zipf population the customers are drawn from. At zero
growth nothing bends, so the plan is exactly `simulate`'s over the same months.

The plan runs once; each price book then bills the same seats, under the
org's billing rule and under both true-up rules.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.errors import ConfigError
from simulator.licensing import seats
from simulator.licensing.costs import EQUAL
from simulator.licensing.prices import Band, Billing, PriceRule, Pricing
from simulator.org import Org, PriceBook, load_price_book, read_toml
from simulator.reports.columns import flat_month
from simulator.simulation import sweep
from simulator.simulation.traffic import (
    PlannedMail,
    SeatState,
    TrafficParams,
    TrafficPlan,
    _company,
)

YEAR = 365.25 * 86400.0
TERMS = (12, 24, 36)
MAX_GROWTH = 10.0  # +1000 % a year: beyond that a "forecast" says nothing


def org_book(org: Org) -> PriceBook:
    """The org file's own `[pricing]` as a price book (the default)."""
    source = org.source or "the org file's [pricing]"
    return PriceBook("org file", org.name, source, "", "", org.pricing)


def load_books(names: list[str] | None, org: Org) -> list[PriceBook]:
    """`--prices` books, shipped names or files, under the org's billing term."""
    return [load_price_book(name, org.licensing.billing) for name in names or []]


@dataclass(frozen=True)
class Terms:
    """What the forecast is asked: the traffic, the org, the term and the growth."""

    params: TrafficParams  # the scenario's: `emails` per `days` is the starting rate
    org: Org
    months: int = 12
    volume_growth: float = 0.0  # per year: 0.2 is 20 % more mail a year from now
    customer_growth: float = 0.0  # per year, of the population customers come from
    start: datetime | None = None  # default: the scenario's start, at its month's first day

    def check(self) -> Terms:
        sweep.check_months(self.months)
        for name, rate in (
            ("growth", self.volume_growth),
            ("customer growth", self.customer_growth),
        ):
            if not -0.99 <= rate <= MAX_GROWTH:
                raise ConfigError(f"{name} must be from -99% to +{MAX_GROWTH:.0%} a year")
        return self

    @property
    def first_day(self) -> datetime:
        moment = self.start or self.params.start
        return datetime(moment.year, moment.month, 1, tzinfo=UTC)

    @property
    def plan_day(self) -> datetime:
        """Where the plan starts: the scenario's month, when the term starts later (the
        months between replay the scenario, so the term inherits its customer base)."""
        moment = self.params.start
        scenario = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        return min(scenario, self.first_day)

    @property
    def warmup_seconds(self) -> float:
        return (self.first_day - self.plan_day).total_seconds()

    @property
    def term_days(self) -> float:
        first = self.first_day
        months = first.month - 1 + self.months
        end = datetime(first.year + months // 12, months % 12 + 1, 1, tzinfo=UTC)
        return (end - first).total_seconds() / 86400


def growth_factor(rate: float, seconds: float) -> float:
    return (1.0 + rate) ** (seconds / YEAR)


def term_params(terms: Terms) -> TrafficParams:
    """The plan's traffic: the months before the term at the scenario's rate, then
    the term, its rate grown from the term's start."""
    p, days = terms.params, terms.term_days
    rate = p.emails / (p.days * 86400)  # messages per second at the start
    seconds = days * 86400
    warmup = terms.warmup_seconds
    if terms.volume_growth:
        log_a = math.log1p(terms.volume_growth)
        emails = round(rate * YEAR / log_a * (math.exp(log_a * seconds / YEAR) - 1))
    else:
        emails = round(rate * seconds)
    if warmup:
        emails += round(rate * warmup)
    top = p.customers
    if terms.customer_growth > 0:
        top = max(
            p.customers, math.ceil(p.customers * growth_factor(terms.customer_growth, seconds))
        )
    return dataclasses.replace(
        p, emails=emails, days=days + warmup / 86400, start=terms.plan_day, customers=top
    )


class GrowingPlan(TrafficPlan):
    """The traffic plan with a clock that bends for volume growth and a customer
    population that widens for customer growth. With no growth it is the plain plan:
    the same draws in the same order at the same times."""

    def __init__(self, params: TrafficParams, org: Org, terms: Terms) -> None:
        super().__init__(params, org)
        self.terms = terms
        self._base_customers = terms.params.customers
        self._now = 0.0  # seconds since the start, of the message being drawn

    def _clock(self, uniform: float) -> float:
        """Seconds since the start for a message at `uniform` on the unbent clock."""
        g, warmup = self.terms.volume_growth, self.terms.warmup_seconds
        p = self.params
        rate = self.terms.params.emails / (self.terms.params.days * 86400)
        if not g:
            return uniform  # one rate throughout, months before the term or not
        index = uniform / (p.days * 86400 / p.emails)  # messages before this one
        before = rate * warmup  # messages of the months before the term, at the base rate
        if index <= before or not g:
            return index / rate
        # Equal counts of mail per equal area under a rate that grows as (1+g)^(t/YEAR)
        # from the term's start.
        log_a = math.log1p(g)
        return warmup + YEAR * math.log1p((index - before) * log_a / (rate * YEAR)) / log_a

    def __iter__(self) -> Iterator[PlannedMail]:
        p = self.params
        start = int(p.start.timestamp())
        slot = p.days * 86400 / p.emails if p.emails else 0.0
        for index in range(p.emails):
            # The plain plan's expression, bent by the clock (identity without growth).
            offset = self._clock((index + self.rng.random()) * slot)
            self._now = offset
            yield self._draw(index, start + int(offset))

    def _customer(self) -> str:
        if not self.terms.customer_growth:
            return super()._customer()
        p = self.params
        if self.rng.random() < p.new_sender_share:
            self._new_senders += 1
            return f"new{self._new_senders}@{_company(self.rng.randrange(p.companies))}"
        since = max(0.0, self._now - self.terms.warmup_seconds)
        grown = self._base_customers * growth_factor(self.terms.customer_growth, since)
        size = max(1, min(p.customers, round(grown)))
        rank = bisect.bisect_left(self._cumulative, self.rng.random() * self._cumulative[size - 1])
        rank = min(rank, size - 1)
        return f"c{rank}@{_company(rank % p.companies)}"


@dataclass(frozen=True)
class SeatPlan:
    """The term's traffic and the seats it left: run once, billed per price book."""

    terms: Terms
    params: TrafficParams
    state: SeatState
    emails_per_month: list[int]


def seat_plan(terms: Terms) -> SeatPlan:
    """Run the term's traffic through the plan (the seat engine's signals)."""
    terms.check()
    params = term_params(terms)
    plan = GrowingPlan(params, terms.org, terms)
    months = _months(params)
    counts = [0] * len(months)
    starts = [m.start for m in months]
    for mail in plan:
        counts[max(0, bisect.bisect_right(starts, mail.at) - 1)] += 1
    return SeatPlan(terms, params, plan.seats, counts[-terms.months :])


def _months(params: TrafficParams) -> list[seats.Month]:
    start, end = seats.stamp(params.start), seats.stamp(params.end)
    return seats.months_between(start, max(start, end - 1))


def _with(org: Org, pricing: Pricing | None = None, billing: Billing | None = None) -> Org:
    if pricing is not None:
        org = dataclasses.replace(org, pricing=pricing)
    if billing is not None:
        org = dataclasses.replace(
            org, licensing=dataclasses.replace(org.licensing, billing=billing)
        )
    return org


def bills(plan: SeatPlan, org: Org) -> sweep.MonthsResult:
    """Every term month's bill for the plan's seats under `org`'s prices and rules."""
    result = sweep.evaluate(plan.params, org, plan.state)
    if not plan.terms.warmup_seconds:
        return result
    # Only the term is billed; the contract year of an annual true-up starts with it.
    term = _months(plan.params)[-plan.terms.months :]
    book = plan.state.book
    billed = seats.bill(org.pricing, org.licensing, book.support_spans(), book.people(), term)
    return dataclasses.replace(result, bills=billed)


def totals(result: sweep.MonthsResult) -> tuple[float, float]:
    return result.contract


def cheaper(support: float, team: float) -> str:
    if math.isclose(support, team, abs_tol=0.005):
        return EQUAL
    return "support" if support < team else "team"


def decision(plan: SeatPlan, org: Org) -> str:
    """The model that costs less over the term: what the sensitivity tries to flip."""
    return cheaper(*totals(bills(plan, org)))


def scale_team_prices(pricing: Pricing, factor: float) -> Pricing:
    """Team's prices (unit and bands) times `factor`: a price ratio moved."""
    rule = pricing.team
    scaled = PriceRule(
        round(rule.unit_price * factor, 6),
        rule.shape,
        tuple(Band(b.up_to, round(b.price * factor, 6)) for b in rule.bands),
        rule.free,
    )
    return dataclasses.replace(pricing, team_per_user=scaled.unit_price, team_rule=scaled)


def price_ratio(pricing: Pricing) -> float:
    return (
        pricing.team_per_user / pricing.support_per_agent if pricing.support_per_agent else math.inf
    )


def breakeven_ratio(result: sweep.MonthsResult, pricing: Pricing) -> float | None:
    """The Team/Support unit-price ratio at which the term's totals tie. Team's bill
    is linear in its prices, so it is the current ratio times Support's total over
    Team's; None when Team costs nothing at any price."""
    support, team = totals(result)
    if team <= 0:
        return None
    return round(price_ratio(pricing) * support / team, 6)


def _month_row(bill: seats.MonthBill, emails: int) -> dict[str, Any]:
    return {**bill.as_row(), "emails": emails}


def change_month(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first month whose cheaper model differs from the month before (ties skipped)."""
    last = None
    for row in rows:
        model = row["cheaper_model"]
        if model == EQUAL:
            continue
        if last is not None and model != last:
            return {"month": row["month"], "from": last, "to": model}
        last = model
    return None


def book_forecast(plan: SeatPlan, book: PriceBook) -> dict[str, Any]:
    org = _with(plan.terms.org, book.pricing)
    result = bills(plan, org)
    rows = [_month_row(b, n) for b, n in zip(result.bills, plan.emails_per_month, strict=True)]
    support, team = totals(result)
    true_up = {}
    for rule in Billing:
        s, t = totals(bills(plan, _with(org, billing=rule)))
        true_up[rule.value] = {"support": s, "team": t, "cheaper_model": cheaper(s, t)}
    c = result.comparison
    return {
        "price_book": book.name,
        "source": book.source,
        "read": book.read,
        "currency": book.pricing.currency,
        "period": book.pricing.period,
        "support_per_agent": book.pricing.support_per_agent,
        "team_per_user": book.pricing.team_per_user,
        "support_shape": book.pricing.support.shape.value,
        "team_shape": book.pricing.team.shape.value,
        "billing": org.licensing.billing.value,
        "months": rows,
        "term": {
            "months": len(rows),
            "support": support,
            "team": team,
            "cheaper_model": cheaper(support, team),
            "margin": round(abs(support - team), 2),
        },
        "true_up": true_up,
        "cheaper_model_changes": change_month(rows),
        "price_ratio": round(price_ratio(book.pricing), 6),
        "breakeven_price_ratio": breakeven_ratio(result, book.pricing),
        "end_of_term": {
            "support_seats": c.support.seats,
            "team_seats": c.team.seats,
            "recommended_model": c.recommended_model,
            "reasons": c.reasons,
        },
    }


def forecast(terms: Terms, books: list[PriceBook]) -> dict[str, Any]:
    """The forecast's JSON: the traffic over the term and each price book's bills."""
    plan = seat_plan(terms)
    books = books or [org_book(terms.org)]
    evidence = sweep.evidence(plan.state, terms.org, 0)
    return {
        "organization": terms.org.name,
        "start": terms.first_day.strftime("%Y-%m-%d"),
        "replayed_from": plan.params.start.strftime("%Y-%m-%d"),
        "months": terms.months,
        "volume_growth_per_year": terms.volume_growth,
        "customer_growth_per_year": terms.customer_growth,
        "emails": plan.params.emails,
        "emails_per_month": plan.emails_per_month,
        "customers_submitting": evidence.customers_submitting,
        "customers_notified": evidence.customers_notified,
        "forecasts": [book_forecast(plan, book) for book in books],
    }


def flat_months(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every price book's months, one level of keys, for tables and CSV."""
    return [
        {"price_book": f["price_book"], "emails": m["emails"], **flat_month(m)}
        for f in data["forecasts"]
        for m in f["months"]
    ]


def parse_growth(text: str, scenario: Path | None) -> float:
    """'20%', '0.2', '-5%' or 'fitted' (the scenario's [fit] volume_growth_per_year)."""
    value = text.strip().lower()
    if value == "fitted":
        if scenario is None:
            raise ConfigError("fitted needs --scenario, a file written by `intake-sim fit`")
        fitted = read_toml(scenario, "scenario file", ConfigError).get("fit", {})
        if "volume_growth_per_year" not in fitted:
            raise ConfigError(
                f"{scenario} has no [fit] volume_growth_per_year: use a rate such as 20%"
            )
        return float(fitted["volume_growth_per_year"])
    try:
        rate = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ConfigError(f"a yearly rate such as 20%, 0.2 or fitted, not {text!r}") from None
    return rate


def term_sentence(book: dict[str, Any]) -> str:
    """A price book's term in words, from the same figures as the JSON."""
    term, unit = book["term"], book["currency"]
    change = book["cheaper_model_changes"]
    moved = (
        f"; the cheaper model changes in {change['month']} ({change['from'].title()} to "
        f"{change['to'].title()})"
        if change
        else "; the cheaper model is the same every month"
    )
    ratio = book["breakeven_price_ratio"]
    ratio_text = "" if ratio is None else f"; break-even Team/Support price ratio {ratio:.4g}"
    won = (
        "both cost the same"
        if term["cheaper_model"] == EQUAL
        else (f"{term['cheaper_model'].title()} is cheaper by {term['margin']:,.2f} {unit}")
    )
    return (
        f"{book['price_book']}: over {term['months']} months Support {term['support']:,.2f} "
        f"{unit}, Team {term['team']:,.2f} {unit}: {won}{moved}{ratio_text}"
    )
