"""Property: the real pipeline and the fast sweep model bill the same, month by month.

Random orgs (every price shape, free seats, counting rules, inactivity, true-up,
notifications, Cc creation, unknown-sender policies, flood guard, billed noise)
and seeded traffic go through `pipeline.batch.ingest` into a real SQLite file
and through the sweep's plan model; the seats, the bills and every advice
sentence must come out equal.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.licensing import seats
from simulator.org import Org, org_from_tables
from simulator.reports import summary
from simulator.simulation import sweep
from simulator.simulation.run import final_report, run_direct
from simulator.simulation.traffic import TrafficParams
from simulator.store.db import open_store

EXAMPLES = int(os.environ.get("ENGINE_EXAMPLES", "200"))


@st.composite
def price_tables(draw: st.DrawFn, model: str, unit: float) -> dict[str, Any]:
    shape = draw(st.sampled_from(["flat", "step", "graduated"]))
    table: dict[str, Any] = {f"{model}_shape": shape, f"{model}_free": draw(st.integers(0, 3))}
    # The price-book terms: a free plan that ends when outgrown, blocks, a minimum.
    table[f"{model}_free_plan"] = draw(st.sampled_from([0, 0, 2, 5]))
    table[f"{model}_block"] = draw(st.sampled_from([1, 1, 5]))
    table[f"{model}_minimum"] = draw(st.sampled_from([0, 0, 3]))
    if shape != "flat":
        edges = sorted(set(draw(st.lists(st.integers(1, 12), min_size=1, max_size=3))))
        prices = draw(st.lists(st.sampled_from([0.0, 4.0, 6.0, 8.0, 10.0, 25.0]), min_size=1))
        bands = [{"up_to": e, "price": prices[i % len(prices)]} for i, e in enumerate(edges)]
        table[f"{model}_bands"] = [*bands, {"price": draw(st.sampled_from([3.0, 7.0, 9.0]))}]
    key = f"{model}_per_{'agent' if model == 'support' else 'user'}"
    if draw(st.booleans()):  # a monthly/annual pair: [licensing] billing picks the price
        table[f"{key}_annual"] = unit * 0.8
    return {key: unit, **table}


@st.composite
def orgs(draw: st.DrawFn) -> Org:
    # Weighted towards the rules that make the most seats: stranger creation, updates.
    policy = draw(st.sampled_from(["create", "create", "existing_only", "shared_user"]))
    intake: dict[str, Any] = {
        "unknown_senders": policy,
        "create_users_from_cc": draw(st.booleans()),
        "cc_users_per_message": draw(st.integers(1, 3)),
        "noise_creates_users": draw(st.booleans()),
        "flood_limit": draw(st.sampled_from([0, 2, 20])),
        "flood_window_minutes": 600,
    }
    if policy == "shared_user":
        intake["shared_user"] = "all@acme.example"
    tables: dict[str, Any] = {
        "organization": {
            "name": "Random",
            "internal_domains": ["acme.example"],
            "intake_addresses": ["support@acme.example"],
        },
        "intake": intake,
        "pricing": {
            **draw(price_tables("support", draw(st.sampled_from([20.0, 25.0])))),
            **draw(price_tables("team", draw(st.sampled_from([5.0, 10.0])))),
            "light_agents_free": draw(st.integers(0, 1)),
        },
        "licensing": {
            "team_counts_from": draw(st.sampled_from(["creation", "first_email", "first_login"])),
            "inactive_after_days": draw(st.sampled_from([0, 0, 1, 7, 20])),
            "billing": draw(st.sampled_from(["monthly", "annual"])),
        },
        "agents": [
            {"email": f"agent{n}@acme.example", "light": n > 0 and draw(st.booleans())}
            for n in range(draw(st.integers(1, 3)))
        ],
        "employees": [
            {"email": f"emp{n}@acme.example", "logs_in": draw(st.booleans())}
            for n in range(draw(st.integers(0, 2)))
        ],
    }
    if draw(st.integers(0, 3)):
        tables["notify"] = {
            "acknowledge": draw(st.booleans()),
            "notify_participants_on_reply": draw(st.integers(0, 3)) > 0,
            "per_recipient_cap": draw(st.sampled_from([0, 1, 2, 10])),
            "cap_window_hours": draw(st.sampled_from([1.0, 48.0])),
        }
    return org_from_tables(tables, "random org")


traffic = st.builds(
    TrafficParams,
    emails=st.integers(6, 24),
    days=st.sampled_from([1.0, 10.0, 31.0, 45.0, 70.0]),
    seed=st.integers(0, 10_000),
    customers=st.integers(2, 12),
    companies=st.integers(1, 3),
    new_sender_share=st.sampled_from([0.0, 0.2]),
    internal_share=st.sampled_from([0.0, 0.2]),
    reply_share=st.sampled_from([0.2, 0.5, 0.7]),
    cc_per_message=st.sampled_from([0.0, 0.7, 1.5, 2.5]),
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(org=orgs(), params=traffic)
def test_pipeline_and_sweep_bill_the_same(org: Org, params: TrafficParams) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(f"sqlite:///{Path(scratch) / 'property.db'}")
        try:
            run_direct(store, org, params, lambda _: None)
            report = final_report(store, org, params)
            with store.read() as session:
                end = params.end
                people = summary.people(session, end)
                support = summary.support_spans(session, end)
                by_month = summary.by_month(session, org, end)
        finally:
            store.dispose()
    fast = sweep.run_months(params, org)
    months = [b.month for b in fast.bills]
    pipeline_bills = seats.bill(org.pricing, org.licensing, support, people, months)
    assert pipeline_bills == fast.bills
    swept = {b.month.label: b for b in fast.bills}
    for month in by_month:
        bill = swept[month["month"]]
        for model, figures in (("support", bill.support), ("team", bill.team)):
            assert month[model]["billed_seats"] == figures.billed_seats
            assert month[model]["cost"] == figures.cost
    row = sweep.row(params.emails, fast, 1)
    for model in ("support", "team"):
        assert report[model]["seats"] == row[model]["seats"]
        assert report[model]["cost"] == row[model]["cost"]
    assert report["team"]["seats_from_notifications"] == row["team"]["seats_from_notifications"]
    assert report["reasons"] == row["reasons"]
    assert report["recommended_model"] == row["recommended_model"]


CAPPED = """
[organization]
name = "Capped"
internal_domains = ["acme.example"]
intake_addresses = ["support@acme.example"]

[intake]
flood_limit = 0

[notify]
acknowledge = false
notify_participants_on_reply = true
per_recipient_cap = 1
cap_window_hours = 48

[[agents]]
email = "agent0@acme.example"
"""


def test_the_per_recipient_cap_holds_back_the_same_updates(tmp_path: Path) -> None:
    """Busy threads with many on Cc: the cap suppresses updates, and a suppressed one
    makes no user; the model must hold back exactly the same ones."""
    org = org_from_tables(tomllib.loads(CAPPED), "capped")
    params = TrafficParams(
        emails=80,
        days=2.0,
        seed=3,
        customers=30,
        companies=2,
        reply_share=0.6,
        cc_per_message=2.5,
        new_sender_share=0.0,
        internal_share=0.0,
    )
    store = open_store(f"sqlite:///{tmp_path / 'capped.db'}")
    run_direct(store, org, params, lambda _: None)
    report = final_report(store, org, params)
    store.dispose()
    fast = sweep.run_months(params, org)
    assert fast.state.suppressed > 0  # the cap matters in this traffic
    assert report["notifications"]["suppressed"] == fast.state.suppressed
    row = sweep.row(params.emails, fast, 1)
    assert report["team"]["seats"] == row["team"]["seats"]
    assert report["team"]["seats_from_notifications"] == row["team"]["seats_from_notifications"]
