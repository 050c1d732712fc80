"""Everything the one-page finance report shows, gathered from the same functions
the CLI's JSON comes from: `report`, `report --by month`, `ledger`, `fit` and
`forecast --sensitivity`. The page (reports/finance.py) only lays it out.

Without a scenario the traffic is fitted from the database itself, so a
mailbox imported with `ingest` or `fetch` is enough for the whole page.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.errors import ConfigError
from simulator.org import Org
from simulator.reports import rows
from simulator.reports.rows import iso
from simulator.reports.summary import by_month, data_end, report
from simulator.simulation import fit as fitting
from simulator.simulation import forecast as fc
from simulator.simulation import sensitivity as sv
from simulator.simulation.scenario import load_scenario
from simulator.store.db import Store


def _read(url: str, org: Org) -> dict[str, Any]:
    store = Store(url, writer=False)
    try:
        store.check_schema()
        with store.read() as session:
            end = data_end(session)
            if end is None:
                raise ConfigError(f"{store.display_url} holds no deliveries or seats to report on")
            facts = fitting.read_facts(session)
            return {
                "as_of": end,
                "report": report(session, org, end),
                "months": by_month(session, org, end),
                "ledger": rows.ledger(session),
                "facts": facts,
                "notified": fitting.notifications(session),
                "db": store.display_url,
            }
    finally:
        store.dispose()


def ledger_months(ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ledger's rows per month: the first and last row, and +1/-1 counts per model
    and reason; the appendix the page's figures link to."""
    months: dict[str, dict[str, Any]] = {}
    for event in ledger:
        month = event["at"][:7]
        entry = months.setdefault(
            month, {"month": month, "first_seq": event["seq"], "last_seq": event["seq"], "rows": {}}
        )
        entry["last_seq"] = event["seq"]
        key = f"{event['model']} {'+1' if event['delta'] > 0 else '-1'} {event['reason']}"
        entry["rows"][key] = entry["rows"].get(key, 0) + 1
    return [months[m] for m in sorted(months)]


def gather(
    url: str,
    org: Org,
    org_path: Path | None,
    scenario: Path | None,
    months: int,
    growth: str,
    customer_growth: str | None,
    books: list[fc.PriceBook],
) -> dict[str, Any]:
    """The page's data; every figure in it is one the CLI prints as JSON."""
    read = _read(url, org)
    fitted = None
    fit_error = ""
    try:
        fitted = fitting.fit_facts(read["facts"], org, read["notified"])
    except ConfigError as exc:
        fit_error = str(exc)
    with tempfile.TemporaryDirectory(prefix="intake-sim-html-") as scratch:
        if scenario is None:
            if fitted is None:
                raise ConfigError(f"no --scenario, and the database cannot be fitted: {fit_error}")
            scenario = Path(scratch) / "fitted.toml"
            scenario.write_text(fitting.scenario_toml(fitted, org_path, "Fitted traffic"))
            source = f"fitted from {read['db']} ({fitted.span})"
        else:
            source = str(scenario)
        loaded = load_scenario(scenario)
        volume = fc.parse_growth(growth, scenario)
        customers = (
            volume if customer_growth is None else fc.parse_growth(customer_growth, scenario)
        )
        # The term starts the month after the data; the plan replays the fitted (or
        # given) traffic up to then, so the term starts with the customer base.
        end = read["as_of"]
        following = datetime(end.year + end.month // 12, end.month % 12 + 1, 1, tzinfo=UTC)
        terms = fc.Terms(loaded.traffic, org, months, volume, customers, following).check()
        books = books or [fc.org_book(org)]
        forecast = fc.forecast(terms, books)
        forecast["sensitivity"] = sv.sensitivity(terms, books[0])
    return {
        "as_of": iso(read["as_of"]),
        "db": read["db"],
        "org_file": str(org_path) if org_path else "the sample org",
        "report": read["report"],
        "months": read["months"],
        "ledger_months": ledger_months(read["ledger"]),
        "ledger_rows": len(read["ledger"]),
        "fit": (
            {"parameters": fitting.fit_rows(fitted), "months": fitted.monthly, "span": fitted.span}
            if fitted
            else None
        ),
        "fit_error": fit_error,
        "scenario": {"source": source, "name": loaded.name, "traffic": _traffic(loaded)},
        "forecast": forecast,
        "licensing": {
            "team_counts_from": org.licensing.team_counts_from.value,
            "inactive_after_days": org.licensing.inactive_after_days,
            "billing": org.licensing.billing.value,
            "unknown_senders": org.intake.unknown_senders.value,
            "create_users_from_cc": org.intake.create_users_from_cc,
            "notify": org.notify.enabled,
        },
    }


def _traffic(loaded: Any) -> dict[str, Any]:
    p = loaded.traffic
    return {
        "emails": p.emails,
        "days": p.days,
        "customers": p.customers,
        "zipf_exponent": p.zipf_exponent,
        "new_sender_share": p.new_sender_share,
        "internal_share": p.internal_share,
        "reply_share": p.reply_share,
        "cc_per_message": p.cc_per_message,
        "noise": dict(p.noise),
    }
