"""Every advice sentence under step, graduated and free-tier prices: each figure in
words is the one `prices.price` gives for that count, never the flat unit price."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from simulator.licensing import seats
from simulator.licensing.advice import Evidence, compare, next_dearer
from simulator.licensing.prices import (
    Band,
    LicensingRules,
    PriceRule,
    PriceShape,
    Pricing,
    TeamCountsFrom,
    price,
)

STEP = PriceRule(
    10.0, PriceShape.STEP, (Band(3, 8.0), Band(6, 7.0), Band(None, 6.0))
)  # 1-3 @ 8 bought whole (24), 4-6 @ 7 (42), then 6 a seat
GRADUATED = PriceRule(10.0, PriceShape.GRADUATED, (Band(2, 10.0), Band(None, 6.0)))
FREE_TIER = PriceRule(10.0, free=3)
SHAPES = {"step": STEP, "graduated": GRADUATED, "free": FREE_TIER}


def pricing(team: PriceRule) -> Pricing:
    return Pricing(support_per_agent=25.0, team_per_user=10.0, team_rule=team)


def figures(sentence: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(r"(\d[\d,]*\.\d\d) USD", sentence)]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_tipping_point_is_the_first_dearer_count(shape: str) -> None:
    rule = SHAPES[shape]
    for team_seats in range(0, 12):
        result = compare(3, team_seats, pricing(rule), Evidence(customers_submitting=0))
        sentence = result.reasons[2]
        if result.team.cost > result.support.cost:
            assert sentence.startswith("Team passed the break-even")
            continue
        more = int(re.search(r"; (\d+) more user\(s\) would tip it", sentence).group(1))
        tip = team_seats + more
        assert price(tip, rule) > 75.0  # that many is dearer than Support ...
        assert all(price(n, rule) <= 75.0 for n in range(team_seats, tip))  # ... no fewer is
        assert tip == next_dearer(team_seats, 75.0, rule)
        assert figures(sentence) == [price(tip, rule), 75.0]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_marginal_cost_goes_through_the_shape(shape: str) -> None:
    rule = SHAPES[shape]
    result = compare(1, 14, pricing(rule), Evidence(customers_submitting=0))
    assert result.team.cost > result.support.cost
    (marginal,) = figures(result.reasons[2])
    assert marginal == round(price(15, rule) - price(14, rule), 2)


def test_marginal_cost_worked_by_hand() -> None:
    # Graduated: the 15th user is in the 6.00 band, not at the 10.00 unit price.
    result = compare(1, 14, pricing(GRADUATED), Evidence(customers_submitting=0))
    assert result.reasons[2].endswith("the next user adds 6.00 USD/month")
    # Free tier: 4 users pay for 1; the 5th adds a whole 10.00.
    free = compare(3, 4, pricing(FREE_TIER), Evidence(customers_submitting=0))
    assert free.team.cost == 10.0
    assert (
        "up to 10 user(s); 7 more user(s) would tip it: 11 user(s) cost 80.00" in (free.reasons[2])
    )


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_without_notifications_is_priced_through_the_shape(shape: str) -> None:
    rule = SHAPES[shape]
    evidence = Evidence(customers_submitting=0, team_seats_from_notifications=4)
    result = compare(3, 9, pricing(rule), evidence)
    sentence = result.reasons[3]
    assert result.team_without_notifications.cost == price(5, rule)
    paid, without = figures(sentence)
    assert without == price(5, rule)
    assert paid == round(price(9, rule) - price(5, rule), 2)
    assert "would bill 5 user(s)" in sentence


def test_free_tier_without_notifications_worked_by_hand() -> None:
    # team_free = 3: 5 users bill 2 seats (20.00); 3 of them only notified -> 2 users bill 0.
    evidence = Evidence(customers_submitting=1, team_seats_from_notifications=3)
    result = compare(1, 5, pricing(FREE_TIER), evidence)
    assert "under Team they are 3 paid seat(s) (20.00 USD/month)" in result.reasons[3]
    assert "would bill 2 user(s) = 0.00 USD/month" in result.reasons[3]


def test_web_form_and_shared_account_wording() -> None:
    result = compare(
        2,
        4,
        pricing(STEP),
        Evidence(
            customers_submitting=3,
            customers_by_web_form=2,
            strangers_shared=5,
            shared_user="all@acme.example",
        ),
    )
    first = result.reasons[0]
    assert first.startswith(
        "1 customer(s) submitted issues by email and 2 customer(s) submitted issues "
        "through the web form and 5 stranger(s) wrote in through the shared account "
        "all@acme.example"
    )
    only_shared = compare(2, 1, pricing(STEP), Evidence(0, strangers_shared=5))
    assert only_shared.recommended_model == "support"
    assert "1 customer" not in only_shared.reasons[0]


def test_lapsed_notified_user_is_no_notification_seat() -> None:
    # Notified on Jan 1, never wrote: with 30 days' inactivity the seat lapses on Jan 31.
    jan1 = seats.stamp(datetime(2026, 1, 1, tzinfo=UTC))
    person = seats.Person(jan1, ((jan1, 1),), notified=True)
    lapsing = LicensingRules(inactive_after_days=30)
    assert seats.notified_seats_at([person], lapsing, jan1 + 10 * seats.DAY) == 1
    assert seats.notified_seats_at([person], lapsing, jan1 + 31 * seats.DAY) == 0
    assert seats.notified_seats_at([person], LicensingRules(), jan1 + 31 * seats.DAY) == 1


def test_web_form_submitters_log_in_under_first_login() -> None:
    jan1 = 1_767_225_600.0
    form = seats.Person(jan1, ((jan1, 1),), (jan1,), login_at=jan1, wrote_at=jan1)
    email = seats.Person(jan1, ((jan1, 1),), (jan1,), wrote_at=jan1)
    rules = LicensingRules(team_counts_from=TeamCountsFrom.FIRST_LOGIN)
    spans = [s for p in (form, email) for s in seats.team_spans(p, rules)]
    assert seats.seats_at(spans, jan1 + 1) == 1


def _first_dearer_by_counting(seats: int, bill: float, rule: PriceRule) -> int:
    count = seats + 1
    while price(count, rule) <= bill + 1e-9:
        count += 1
    return count


RISING = {
    "flat": PriceRule(10.0),
    "free plan": PriceRule(10.0, free_plan=10),
    "blocks and minimum": PriceRule(4.0, free=2, block=25, minimum=50),
    "graduated": PriceRule(10.0, PriceShape.GRADUATED, (Band(100, 10.0), Band(None, 0.5))),
}


@pytest.mark.parametrize("name", sorted(RISING))
def test_next_dearer_bisects_to_the_count_counting_finds(name: str) -> None:
    """The tipping point is found by doubling and bisecting when bills only rise: the
    very count one-by-one counting reaches, across gaps from none to thousands."""
    rule = RISING[name]
    for seats_held in (0, 1, 9, 10, 11, 99, 250, 1000):
        for bill in (0.0, 9.99, 10.0, 100.0, 499.5, 1234.5, 20000.0):
            expected = _first_dearer_by_counting(seats_held, bill, rule)
            assert next_dearer(seats_held, bill, rule) == expected, (seats_held, bill)
