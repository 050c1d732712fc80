"""The counting rules a real bill depends on, worked by hand: a free plan that ends,
blocks and minimums, monthly/annual price pairs, ladders that bill less for more,
light agents past an allowance, system accounts and aliases in the org file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from simulator.errors import OrgFileError
from simulator.licensing import advice, costs
from simulator.licensing.prices import (
    Band,
    PricePair,
    PriceRule,
    PriceShape,
    Pricing,
    billable_seats,
    price,
    price_drops,
)
from simulator.org import load_org


@pytest.mark.parametrize(
    ("seats", "expected"),
    [
        (0, 0.0),  # nobody to bill: no minimum either
        (1, 100.0),  # the minimum of 10 seats at 10.00
        (10, 100.0),
        (11, 150.0),  # two blocks of 5 over the minimum: 15 seats
        (15, 150.0),
        (16, 200.0),
    ],
)
def test_blocks_of_five_and_a_minimum_of_ten(seats: int, expected: float) -> None:
    deskpro = PriceRule(unit_price=10.0, block=5, minimum=10)
    assert price(seats, deskpro) == expected


def test_a_free_plan_ends_when_outgrown_unlike_free_seats() -> None:
    free_plan = PriceRule(unit_price=20.0, free_plan=3)  # "free for up to 3 agents"
    first_free = PriceRule(unit_price=20.0, free=3)  # "the first 3 agents free"
    assert [price(n, free_plan) for n in (0, 3, 4, 5)] == [0.0, 0.0, 80.0, 100.0]
    assert [price(n, first_free) for n in (0, 3, 4, 5)] == [0.0, 0.0, 20.0, 40.0]
    jira = PriceRule(unit_price=8.6, free_plan=10)
    assert (price(10, jira), price(11, jira)) == (0.0, 94.6)


def test_billable_seats_order_free_plan_then_free_then_blocks_then_minimum() -> None:
    rule = PriceRule(unit_price=1.0, free=2, block=5, minimum=10, free_plan=4)
    assert billable_seats(4, rule) == 0  # inside the free plan
    assert billable_seats(5, rule) == 10  # 3 billable -> one block of 5 -> the minimum 10
    assert billable_seats(14, rule) == 15  # 12 billable -> 15 in blocks


def test_a_ladder_that_bills_less_for_more_is_found_and_worded_with_its_figures() -> None:
    ladder = PriceRule(
        unit_price=8.0,
        shape=PriceShape.STEP,
        bands=(Band(10, 8.0), Band(25, 7.0), Band(None, 6.0)),
    )
    assert (price(25, ladder), price(26, ladder)) == (175.0, 156.0)
    assert price_drops(ladder) == [(25, 175.0, 156.0)]
    warnings = costs.pricing_warnings(Pricing(team_rule=ladder))
    assert warnings == [
        "team prices bill 175.00 USD for 25 user(s) but 156.00 USD for 26: "
        "this ladder charges less for more seats"
    ]
    graduated = PriceRule(8.0, PriceShape.GRADUATED, ladder.bands)
    assert price_drops(graduated) == [] and costs.pricing_warnings(Pricing()) == []


def test_price_drops_agree_with_trying_every_count() -> None:
    """Bisection per edge against the bill at every count, over seeded random ladders
    with free seats, free plans, blocks (one can carry the count over two edges) and
    minimums; and an edge at a million seats is found without counting to it."""
    draw = random.Random(15)
    for _ in range(200):
        edges = sorted(draw.sample(range(1, 60), draw.randint(1, 4)))
        bands = tuple(Band(e, draw.choice([3.0, 5.0, 7.0, 8.0, 9.0])) for e in edges)
        rule = PriceRule(
            5.0,
            PriceShape.STEP,
            (*bands, Band(None, draw.choice([2.0, 6.0, 10.0]))),
            free=draw.randint(0, 4),
            free_plan=draw.choice([0, 0, 5, 70]),
            block=draw.choice([0, 1, 3, 5]),
            minimum=draw.choice([0, 0, 7, 12, 80]),
        )
        every = [(n, price(n, rule), price(n + 1, rule)) for n in range(1, 400)]
        assert price_drops(rule) == [(n, a, b) for n, a, b in every if b < a], rule
    wide = PriceRule(8.0, PriceShape.STEP, (Band(10, 8.0), Band(1_000_000, 7.0), Band(None, 6.0)))
    assert price_drops(wide) == [(1_000_000, 7_000_000.0, 6_000_006.0)]


def test_breakeven_follows_blocks_and_free_plans() -> None:
    support = PriceRule(unit_price=25.0)  # 4 agents: 100.00
    blocks = Pricing(support_rule=support, team_rule=PriceRule(unit_price=9.0, block=5))
    # 10 seats (two blocks) bill 90.00; 11 buy a third block, 135.00. Per seat it would be 11.
    assert costs.breakeven_team_seats(4, blocks) == 10
    jira = Pricing(support_rule=support, team_rule=PriceRule(unit_price=8.6, free_plan=10))
    assert costs.breakeven_team_seats(4, jira) == 11  # 11 x 8.60 = 94.60; 12 = 103.20


def test_the_figures_sentence_names_the_new_terms() -> None:
    pricing = Pricing(
        support_rule=PriceRule(unit_price=20.0, free_plan=3),
        team_rule=PriceRule(unit_price=10.0, block=5, minimum=10),
    )
    result = advice.compare(3, 11, pricing, advice.Evidence(customers_submitting=0))
    assert (result.support.cost, result.team.cost) == (0.0, 150.0)
    assert result.reasons[1] == (
        "Support bills 3 agent(s) (flat prices, free while at most 3) = 0.00 USD/month; "
        "Team bills 11 user(s) (flat prices, in blocks of 5, at least 10 billed) = "
        "150.00 USD/month; Support is cheaper by 150.00 USD/month"
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "org.toml"
    head = (
        '[organization]\nintake_addresses = ["desk@x.example"]\ninternal_domains = ["x.example"]\n'
    )
    path.write_text(head + text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("billing", "unit"), [("monthly", 25.0), ("annual", 19.0)])
def test_a_monthly_and_annual_pair_bills_the_terms_price(
    tmp_path: Path, billing: str, unit: float
) -> None:
    org = load_org(
        write(
            tmp_path,
            f'[licensing]\nbilling = "{billing}"\n'
            "[pricing]\nsupport_per_agent = 25.0\nsupport_per_agent_annual = 19.0\n",
        )
    )
    assert org.pricing.support_per_agent == unit and org.pricing.support.unit_price == unit
    assert org.pricing.support_pair == PricePair(monthly=25.0, annual=19.0)
    assert org.pricing.team_pair is None


def test_org_file_new_price_knobs(tmp_path: Path) -> None:
    org = load_org(
        write(tmp_path, "[pricing]\nteam_free_plan = 10\nsupport_block = 5\nsupport_minimum = 10\n")
    )
    assert org.pricing.team == PriceRule(10.0, free_plan=10)
    assert org.pricing.support == PriceRule(25.0, block=5, minimum=10)


def test_light_agents_past_the_allowance_are_billed_as_agents(tmp_path: Path) -> None:
    agents = "".join(
        f'[[agents]]\nemail = "{name}@x.example"\nlight = true\n' for name in ("l1", "l2", "l3")
    )
    org = load_org(write(tmp_path, f"[pricing]\nlight_agents_free = 2\n{agents}"))
    roles = {email: (e.role, e.logs_in) for email, e in org.directory.items()}
    # The first two, in file order, are free under Support and still log in (Team seats).
    assert roles == {
        "l1@x.example": ("employee", True),
        "l2@x.example": ("employee", True),
        "l3@x.example": ("agent", True),
    }
    none_free = org.with_pricing(Pricing())
    assert {e.role for e in none_free.directory.values()} == {"agent"}


def test_system_accounts_free_or_billed(tmp_path: Path) -> None:
    org = load_org(
        write(
            tmp_path,
            '[[system_accounts]]\nemail = "system@x.example"\n'
            '[[system_accounts]]\nemail = "admin@x.example"\nbilled = true\n',
        )
    )
    assert org.free_system_accounts == frozenset({"system@x.example"})
    admin = org.directory["admin@x.example"]
    assert (admin.role, admin.logs_in, admin.system) == ("agent", True, True)
    assert "system@x.example" not in org.directory


def test_identity_merges_aliases_and_plus_addresses(tmp_path: Path) -> None:
    org = load_org(
        write(
            tmp_path,
            "[identity]\nmerge_plus_addresses = true\n"
            '[[agents]]\nemail = "ava@x.example"\naliases = ["Ava.Agent@Old.example"]\n',
        )
    )
    assert org.identity("jo+billing@c.example") == "jo@c.example"
    assert org.identity("jo@c.example") == "jo@c.example"
    assert org.identity("+tag@c.example") == "+tag@c.example"  # no address is left without a name
    assert org.identity("ava.agent@old.example") == "ava@x.example"
    assert org.identity("ava.agent+x@old.example") == "ava@x.example"
    plain = load_org(write(tmp_path, ""))
    assert plain.identity("jo+billing@c.example") == "jo+billing@c.example"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[pricing]\nteam_block = -5\n", "team_block must not be negative"),
        ("[pricing]\nlight_agents_free = -1\n", "light_agents_free must not be negative"),
        ('[identity]\nplus_separator = "++"\n', "plus_separator must be one character"),
        ("[identity]\nmerge_plus = true\n", "identity: unknown key"),
        (
            '[[agents]]\nemail = "a@x.example"\naliases = ["b@x.example"]\n'
            '[[agents]]\nemail = "b@x.example"\n',
            "alias b@x.example belongs to more than one",
        ),
        (
            '[[agents]]\nemail = "a@x.example"\n[[system_accounts]]\nemail = "a@x.example"\n',
            "appears twice",
        ),
    ],
)
def test_counting_rule_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(OrgFileError, match=message):
        load_org(write(tmp_path, text))
