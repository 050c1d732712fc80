"""Seats over time: when each user is billed under the org's licensing rules.

Pure: the report layer passes in facts read from the ledger, the users and
their counted deliveries; nothing here touches the database. The ledger stays
what happened (append-only, first-email seats); the rules below are readings
of it that model how different vendors bill:

- `team_counts_from`: a Team user is billed from account creation, from their
  first counted email (the ledger as written), or only once they log in.
- `inactive_after_days`: a seat lapses N days after the user's last counted
  email and comes back with the next one; users who log in never lapse.
- `billing`: each month bills the highest count reached in it (monthly
  true-up), or the highest reached so far in the contract year (annual).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simulator.licensing.costs import ModelCost, cheaper_model
from simulator.licensing.prices import (
    Billing,
    LicensingRules,
    PriceRule,
    Pricing,
    TeamCountsFrom,
    price,
)

Interval = tuple[datetime, datetime | None]  # [start, end); None: still running


@dataclass(frozen=True)
class UserFacts:
    created_at: datetime
    logs_in: bool
    team_events: tuple[tuple[datetime, int], ...]  # (at, delta) in ledger order
    activity: tuple[datetime, ...] = ()  # counted deliveries, oldest first


def ledger_intervals(events: tuple[tuple[datetime, int], ...]) -> list[Interval]:
    """Turn one user's +1/-1 rows into the spans during which the seat is held."""
    spans: list[Interval] = []
    held, since = 0, None
    for at, delta in events:
        held += delta
        if held > 0 and since is None:
            since = at
        elif held <= 0 and since is not None:
            spans.append((since, at))
            since = None
    if since is not None:
        spans.append((since, None))
    return spans


def reads_ledger_as_written(rules: LicensingRules) -> bool:
    """Whether Team seats under `rules` are exactly the ledger's spans (as
    `team_intervals` gives them): counted from the first email, never lapsing."""
    return rules.team_counts_from is TeamCountsFrom.FIRST_EMAIL and not rules.inactive_after_days


def team_intervals(user: UserFacts, rules: LicensingRules) -> list[Interval]:
    spans = ledger_intervals(user.team_events)
    if rules.team_counts_from is TeamCountsFrom.FIRST_LOGIN:
        spans = spans if user.logs_in else []
    elif rules.team_counts_from is TeamCountsFrom.CREATION:
        if spans:
            spans[0] = (min(user.created_at, spans[0][0]), spans[0][1])
        else:
            spans = [(user.created_at, None)]
    if rules.inactive_after_days and not user.logs_in and spans:
        spans = _while_active(spans, user, timedelta(days=rules.inactive_after_days))
    return spans


def _while_active(spans: list[Interval], user: UserFacts, grace: timedelta) -> list[Interval]:
    """Keep the parts of `spans` within `grace` after the seat began or after any email."""
    starts = sorted({spans[0][0], *user.activity})
    windows: list[list[datetime]] = []
    for start in starts:
        if windows and start <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], start + grace)
        else:
            windows.append([start, start + grace])
    kept: list[Interval] = []
    for low, high in spans:
        for w_low, w_high in windows:
            start = max(low, w_low)
            end = w_high if high is None else min(high, w_high)
            if start < end:
                kept.append((start, end))
    return kept


def count_at(spans: list[Interval], moment: datetime) -> int:
    return sum(1 for start, end in spans if start <= moment and (end is None or end > moment))


def months_between(first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
    """Calendar months (UTC) from the one holding `first` to the one holding `last`."""
    months = []
    cursor = datetime(first.year, first.month, 1, tzinfo=UTC)
    while cursor <= last:
        following = datetime(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1, tzinfo=UTC)
        months.append((cursor, following))
        cursor = following
    return months


def monthly_seats(
    spans: list[Interval], months: list[tuple[datetime, datetime]]
) -> list[tuple[int, int]]:
    """(seats at the month's end, highest count reached during the month) per month."""
    changes = sorted(
        [(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans if end is not None],
        key=lambda change: (change[0], change[1]),  # a seat that ends frees room first
    )
    result, held, i = [], 0, 0
    for month_start, month_end in months:
        while i < len(changes) and changes[i][0] < month_start:
            held += changes[i][1]
            i += 1
        peak = held
        while i < len(changes) and changes[i][0] < month_end:
            held += changes[i][1]
            peak = max(peak, held)
            i += 1
        result.append((held, peak))
    return result


def billed(peaks: list[int], billing: Billing) -> list[int]:
    """Seats each month's bill is for: the month's peak, or the year's peak so far."""
    if billing is Billing.MONTHLY:
        return list(peaks)
    out, high = [], 0
    for index, peak in enumerate(peaks):
        if index % 12 == 0:
            high = 0  # a new contract year starts with the first month of the data
        high = max(high, peak)
        out.append(high)
    return out


SeatCounts = list[tuple[int, int]]  # per month: (seats at its end, peak during it)


def model_months(
    counts: SeatCounts, rule: PriceRule, billing: Billing
) -> list[dict[str, int | float]]:
    bills = billed([peak for _, peak in counts], billing)
    return [
        {
            "seats": held,
            "peak_seats": peak,
            "billed_seats": bill,
            "cost": price(bill, rule),
        }
        for (held, peak), bill in zip(counts, bills, strict=True)
    ]


def by_month(
    pricing: Pricing,
    rules: LicensingRules,
    support_counts: SeatCounts,
    team_counts: SeatCounts,
    months: list[tuple[datetime, datetime]],
    active_senders: list[int],
    new_users: list[int],
) -> list[dict[str, object]]:
    """The month rows from each model's `monthly_seats` counts (or the same figures
    read from the ledger by the report layer)."""
    support = model_months(support_counts, pricing.support, rules.billing)
    team = model_months(team_counts, pricing.team, rules.billing)
    return [
        {
            "month": start.strftime("%Y-%m"),
            "support": s,
            "team": t,
            "cheaper_model": cheaper_model(
                ModelCost(s["seats"], 0.0, s["cost"]),  # type: ignore[arg-type]
                ModelCost(t["seats"], 0.0, t["cost"]),  # type: ignore[arg-type]
            ),
            "active_senders": active,
            "new_users": new,
        }
        for (start, _), s, t, active, new in zip(
            months, support, team, active_senders, new_users, strict=True
        )
    ]
