"""Licensing is pure arithmetic: checked against figures worked by hand."""

from __future__ import annotations

import pytest

from simulator.licensing.advice import Evidence, compare
from simulator.licensing.costs import breakeven_team_seats
from simulator.licensing.prices import Pricing, cost

PRICES = Pricing(currency="USD", period="month", support_per_agent=25.0, team_per_user=10.0)


def test_cost_is_seats_times_price() -> None:
    assert cost(3, 25.0) == 75.0
    assert cost(0, 25.0) == 0.0
    assert cost(7, 9.99) == 69.93


@pytest.mark.parametrize(
    ("support_seats", "support_price", "team_price", "expected"),
    [
        (3, 25.0, 10.0, 7),  # 75 / 10 = 7.5 -> 7 users cost 70 <= 75
        (4, 25.0, 10.0, 10),  # 100 / 10 = 10 exactly: equal cost still counts
        (3, 25.0, 2.5, 30),  # 75 / 2.5 = 30 exactly, no float drift to 29
        (0, 25.0, 10.0, 0),
        (3, 25.0, 0.0, None),  # free Team seats: no break-even
    ],
)
def test_breakeven(
    support_seats: int, support_price: float, team_price: float, expected: int | None
) -> None:
    prices = Pricing(support_per_agent=support_price, team_per_user=team_price)
    assert breakeven_team_seats(support_seats, prices) == expected


def test_customers_writing_in_point_to_support_even_when_team_is_cheaper() -> None:
    result = compare(3, 5, PRICES, Evidence(customers_submitting=2))
    assert (result.support.cost, result.team.cost) == (75.0, 50.0)
    assert result.cheaper_model == "team"
    assert result.recommended_model == "support"
    assert "2 customer(s) submitted issues by email" in result.reasons[0]
    assert "Team is cheaper by 25.00 USD/month" in result.reasons[1]
    assert "up to 7 user(s); 3 more user(s) would tip it: 8 user(s) cost 80.00" in result.reasons[2]


def test_internal_only_intake_follows_the_figures() -> None:
    result = compare(3, 12, PRICES, Evidence(customers_submitting=0))
    assert result.cheaper_model == "support"
    assert result.recommended_model == "support"
    assert "allows Team" in result.reasons[0]
    assert "passed the break-even of 7 user(s) by 5" in result.reasons[2]
    cheap = compare(3, 4, PRICES, Evidence(customers_submitting=0))
    assert (cheap.cheaper_model, cheap.recommended_model) == ("team", "team")


def test_notified_customers_count_as_evidence() -> None:
    result = compare(1, 1, PRICES, Evidence(customers_submitting=0, customers_notified=4))
    assert result.recommended_model == "support"
    assert "4 customer(s) receive automatic email updates" in result.reasons[0]


def test_equal_costs() -> None:
    result = compare(2, 5, PRICES, Evidence(customers_submitting=0))
    assert result.cheaper_model == "equal"
    assert result.reasons[1].endswith("both cost the same")
