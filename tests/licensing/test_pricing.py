"""Price shapes, free seats, and the licensing rules read from the ledger, worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulator.errors import OrgFileError
from simulator.licensing import advice, costs, seats
from simulator.licensing.prices import (
    Band,
    Billing,
    LicensingRules,
    PriceRule,
    PriceShape,
    Pricing,
    TeamCountsFrom,
    price,
)
from simulator.org import load_org

BANDS = (Band(10, 5.0), Band(25, 4.0), Band(None, 4.0))


def rule(shape: PriceShape, free: int = 0) -> PriceRule:
    return PriceRule(unit_price=5.0, shape=shape, bands=BANDS if shape != "flat" else (), free=free)


@pytest.mark.parametrize(
    ("shape", "free", "seats", "expected"),
    [
        # flat: billable seats x unit price; the first `free` cost nothing
        (PriceShape.FLAT, 0, 7, 35.0),
        (PriceShape.FLAT, 3, 10, 35.0),  # 7 billable x 5
        (PriceShape.FLAT, 3, 2, 0.0),
        # step: the band the count falls in is bought whole
        (PriceShape.STEP, 0, 7, 50.0),  # band 1..10 at 5: 10 x 5
        (PriceShape.STEP, 0, 10, 50.0),
        (PriceShape.STEP, 0, 11, 100.0),  # band 11..25 at 4: 25 x 4
        (PriceShape.STEP, 0, 30, 120.0),  # open band at 4 per seat: 30 x 4
        (PriceShape.STEP, 2, 12, 50.0),  # 10 billable: still the first band
        # graduated: each seat at the price of its own band
        (PriceShape.GRADUATED, 0, 7, 35.0),  # 7 x 5
        (PriceShape.GRADUATED, 0, 11, 54.0),  # 10 x 5 + 1 x 4
        (PriceShape.GRADUATED, 0, 30, 130.0),  # 10 x 5 + 15 x 4 + 5 x 4
        (PriceShape.GRADUATED, 2, 12, 50.0),  # 10 billable x 5
        (PriceShape.GRADUATED, 0, 0, 0.0),
    ],
)
def test_price_shapes(shape: PriceShape, free: int, seats: int, expected: float) -> None:
    assert price(seats, rule(shape, free)) == expected


def test_breakeven_under_each_shape() -> None:
    support = PriceRule(unit_price=25.0)  # 4 agents: 100.00
    flat = Pricing(support_rule=support, team_rule=PriceRule(unit_price=10.0, free=5))
    assert costs.breakeven_team_seats(4, flat) == 15  # 5 free + 100 / 10
    graduated = Pricing(support_rule=support, team_rule=rule(PriceShape.GRADUATED))
    assert costs.breakeven_team_seats(4, graduated) == 22  # 50 + 12 x 4 = 98; 23 costs 102
    step = Pricing(support_rule=support, team_rule=rule(PriceShape.STEP))
    assert costs.breakeven_team_seats(4, step) == 25  # 25 seats bill 100.00 exactly


def test_compare_uses_the_shapes() -> None:
    pricing = Pricing(
        support_per_agent=25.0,
        team_per_user=5.0,
        support_rule=PriceRule(unit_price=25.0, free=1),
        team_rule=rule(PriceShape.GRADUATED),
    )
    result = advice.compare(3, 11, pricing, advice.Evidence(customers_submitting=0))
    assert (result.support.cost, result.team.cost) == (50.0, 54.0)
    assert result.cheaper_model == "support"
    assert "graduated prices" in result.reasons[1] and "the first 1 free" in result.reasons[1]


def test_org_file_bands_and_rules(tmp_path: Path) -> None:
    path = tmp_path / "org.toml"
    path.write_text(
        """
[organization]
intake_addresses = ["desk@x.example"]
[pricing]
team_per_user = 5.0
team_shape = "graduated"
team_free = 2
team_bands = [{up_to = 10, price = 5.0}, {up_to = 25, price = 4.0}, {price = 4.0}]
[licensing]
team_counts_from = "creation"
inactive_after_days = 30
billing = "annual"
""",
        encoding="utf-8",
    )
    org = load_org(path)
    assert org.pricing.team == PriceRule(5.0, PriceShape.GRADUATED, BANDS, free=2)
    assert org.pricing.support == PriceRule(25.0)
    assert org.licensing == LicensingRules(TeamCountsFrom.CREATION, 30, Billing.ANNUAL)


@pytest.mark.parametrize(
    ("pricing", "message"),
    [
        ('team_shape = "tiered"', "team_shape must be one of"),
        ('team_shape = "step"', "last band must have no up_to"),
        (
            'team_shape = "step"\nteam_bands = [{up_to = 9, price = 1.0}, {up_to = 3, price = 1.0},'
            " {price = 1.0}]",
            "rise from band to band",
        ),
        ("team_bands = [{price = 1.0}]", "needs pricing.team_shape"),
        ("support_free = -1", "must not be negative"),
    ],
)
def test_org_file_price_errors(tmp_path: Path, pricing: str, message: str) -> None:
    path = tmp_path / "org.toml"
    path.write_text(
        f'[organization]\nintake_addresses = ["d@x.example"]\n[pricing]\n{pricing}\n',
        encoding="utf-8",
    )
    with pytest.raises(OrgFileError, match=message):
        load_org(path)


def day(month: int, number: int) -> float:
    return seats.stamp(datetime(2026, month, number, tzinfo=UTC))


# A customer created and first counted on Jan 10 who writes again on Feb 20; a
# directory employee who logs in, from Jan 1; a Cc'd user created Jan 5 who never writes.
CUSTOMER = seats.Person(
    day(1, 10), ((day(1, 10), 1),), (day(1, 10), day(2, 20)), wrote_at=day(1, 10)
)
LOGIN = seats.Person(day(1, 1), ((day(1, 1), 1),), login_at=day(1, 1))
DORMANT = seats.Person(day(1, 5))
MONTHS = seats.months_between(day(1, 1), day(3, 31))


def spans(rules: LicensingRules) -> list[seats.Span]:
    return [s for u in (CUSTOMER, LOGIN, DORMANT) for s in seats.team_spans(u, rules)]


def test_team_counts_from() -> None:
    ledger = spans(LicensingRules())
    assert seats.seats_at(ledger, day(1, 9)) == 1  # only the login user
    assert seats.seats_at(ledger, day(1, 10)) == 2
    creation = spans(LicensingRules(team_counts_from=TeamCountsFrom.CREATION))
    assert seats.seats_at(creation, day(1, 9)) == 2  # the dormant account counts too
    assert seats.seats_at(creation, day(3, 1)) == 3
    login = spans(LicensingRules(team_counts_from=TeamCountsFrom.FIRST_LOGIN))
    assert seats.seats_at(login, day(3, 1)) == 1


def test_inactivity_expiry_and_monthly_peaks() -> None:
    expiring = spans(LicensingRules(inactive_after_days=30))
    # The customer's seat runs from Jan 10 until Feb 9 (30 days), lapses, and is
    # back from Feb 20 until Mar 22.
    assert seats.seats_at(expiring, day(2, 8)) == 2
    assert seats.seats_at(expiring, day(2, 9)) == 1
    assert seats.seats_at(expiring, day(2, 20)) == 2
    assert seats.seats_at(expiring, day(3, 22)) == 1
    # (seats at month end, peak in month): Jan (2, 2), Feb (2, 2), Mar (1, 2)
    assert seats.month_seats(expiring, MONTHS) == [(2, 2), (2, 2), (1, 2)]
    assert seats.month_seats(spans(LicensingRules()), MONTHS) == [(2, 2)] * 3


def test_monthly_true_up_versus_annual() -> None:
    peaks = [3, 5, 2, 4] + [1] * 8 + [2, 1]
    assert seats.billed(peaks, Billing.MONTHLY) == peaks
    # The year's highest count so far, starting again with month 13.
    assert seats.billed(peaks, Billing.ANNUAL) == [3, 5, 5, 5, *[5] * 8, 2, 2]
