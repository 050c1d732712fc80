"""The seat engine: who holds a seat under each model, and what every month bills.

Pure: every path that counts seats feeds this module the same kind of facts and
reads the same answers, so no seat rule is written twice. The intake pipeline
asks it which seat a signal opens (its ledger writes the answer as +1/-1 rows),
the reports read the ledger back through it, and the fast traffic model behind
`sweep` feeds it the same signals from a plan, without a database.

Times are Unix seconds (floats); `stamp()` turns an aware datetime into one.

The API, kept stable for the modules that build on it:

- `Signal`: what happened to a person that can open a Team seat (a counted
  email, a web-form submission, billed noise, creation from To/Cc, an
  automatic email, a directory login) and `team_reason(signal)`, the ledger
  reason the seat is written with.
- `directory_seats(agent, logs_in, wrote, removed)`: the two seats a directory
  record wants (`DirectorySeats`).
- `SeatBook`: the ledger in memory. Feed it signals in time order
  (`directory`, `wrote`, `noise`, `cc_created`, `notified`); it keeps the same
  rows the pipeline's ledger would write and gives `people()` and
  `support_spans()`.
- `Person`: one person's facts (creation, ledger rows, counted deliveries,
  portal login, first counted email, whether an automatic email opened the
  seat); `team_spans(person, rules)` applies `[licensing]` (when a user starts
  counting, inactivity); `ledger_spans(rows)` for rows as written;
  `reads_deliveries(rules)`: whether those rules look at counted deliveries.
- `months_between(first, last)` -> `Month`s; `bill(pricing, rules,
  support_spans, people, months)` -> one `MonthBill` per month: seats held at
  the month's end, the month's peak, the seats billed (monthly or annual
  true-up), the cost through `prices.price`, and the Team seats held only
  because of automatic email; `bill_counts` does the same from counts already
  taken (`month_seats` per model, notified seats at each `month_end`).
- `seats_at(spans, moment)`, `notified_seats_at(people, rules, moment)`:
  the same readings at one moment.

Licensing rules:

- `team_counts_from`: a Team user is billed from account creation, from the
  seat's first ledger row (first counted email, Cc creation, notification),
  or only once they log in: a directory user who logs in, or a web-form
  submitter, who logs in to the portal (from their first submission).
- `inactive_after_days`: a seat lapses N days after it began or after the
  user's last counted email, and comes back with the next one; a user who
  logs in never lapses once logged in.
- `billing`: each month bills the highest count reached in it (monthly
  true-up), or the highest reached so far in the contract year (annual).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from simulator.domain import SeatReason
from simulator.licensing.costs import ModelCost, cheaper_model
from simulator.licensing.prices import (
    Billing,
    LicensingRules,
    PriceRule,
    Pricing,
    TeamCountsFrom,
    price,
)

Span = tuple[float, float | None]  # [start, end) in Unix seconds; None: still running
DAY = 86400.0


def stamp(moment: datetime) -> float:
    """Unix seconds of an aware datetime (a naive one is read as UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class Signal(StrEnum):
    """What happened to a person that opens a Team seat when none is held."""

    WROTE = "wrote"  # a counted email
    WEB_FORM = "web_form"  # a counted web-form submission: the person logs in to the portal
    SHARED = "shared"  # counted mail of a stranger, mapped to the shared account
    NOISE = "noise"  # filtered machine mail, billed under `noise_creates_users`
    CC = "cc"  # created from the To/Cc of counted mail
    NOTIFIED = "notified"  # received an automatic email
    LOGIN = "login"  # a directory user who logs in


TEAM_REASONS = {
    Signal.WROTE: SeatReason.FIRST_EMAIL,
    Signal.WEB_FORM: SeatReason.WEB_FORM,
    Signal.SHARED: SeatReason.SHARED_USER,
    Signal.NOISE: "noise_sender",
    Signal.CC: SeatReason.CC_CREATED,
    Signal.NOTIFIED: SeatReason.NOTIFIED,
    Signal.LOGIN: SeatReason.DIRECTORY_LOGIN,
}
# Signals that are counted deliveries by the person: they keep a seat active.
ACTIVE = frozenset({Signal.WROTE, Signal.WEB_FORM, Signal.SHARED})


def team_reason(signal: Signal) -> str:
    """The ledger reason of the Team seat `signal` opens."""
    return str(TEAM_REASONS[signal])


@dataclass(frozen=True)
class DirectorySeats:
    support: bool
    support_reason: str
    team: bool
    team_reason: str


def directory_seats(agent: bool, logs_in: bool, wrote: bool, removed: bool) -> DirectorySeats:
    """The seats a directory record wants: Support for an agent, Team for anyone who
    logs in or has written; both end when the record leaves the org file."""
    wants_support = agent and not removed
    wants_team = not removed and (logs_in or wrote)
    if wants_support:
        support_reason = SeatReason.DIRECTORY_AGENT
    else:
        support_reason = SeatReason.DIRECTORY_REMOVED if removed else SeatReason.ROLE_CHANGED
    if wants_team:
        reason = SeatReason.DIRECTORY_LOGIN if logs_in else SeatReason.FIRST_EMAIL
    else:
        reason = SeatReason.DIRECTORY_REMOVED if removed else SeatReason.NO_LOGIN
    return DirectorySeats(wants_support, str(support_reason), wants_team, str(reason))


@dataclass(frozen=True)
class Person:
    """One person's facts, as the ledger and the deliveries have them."""

    created_at: float
    team_events: tuple[tuple[float, int], ...] = ()  # (at, +1/-1) in ledger order
    activity: tuple[float, ...] = ()  # counted deliveries, oldest first
    login_at: float | None = None  # logs in from then on (directory, or the web form)
    wrote_at: float | None = None  # first counted email; None: never wrote
    notified: bool = False  # an automatic email opened a Team seat


def ledger_spans(events: Iterable[tuple[float, int]]) -> list[Span]:
    """Turn one person's +1/-1 rows into the spans during which the seat is held."""
    spans: list[Span] = []
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


def team_spans(person: Person, rules: LicensingRules) -> list[Span]:
    """When the person is a billed Team user under the org's licensing rules."""
    spans = ledger_spans(person.team_events)
    if rules.team_counts_from is TeamCountsFrom.FIRST_LOGIN:
        spans = _from(spans, person.login_at)
    elif rules.team_counts_from is TeamCountsFrom.CREATION:
        if spans:
            spans[0] = (min(person.created_at, spans[0][0]), spans[0][1])
        else:
            spans = [(person.created_at, None)]
    if rules.inactive_after_days and spans:
        spans = _while_active(spans, person, rules.inactive_after_days * DAY)
    return spans


def reads_deliveries(rules: LicensingRules) -> bool:
    """Whether `team_spans` looks at counted deliveries (`activity`) or a portal login
    taken from them under these rules; without, the ledger rows and the user record
    are enough (and a caller may leave those facts out)."""
    return bool(rules.inactive_after_days) or rules.team_counts_from is TeamCountsFrom.FIRST_LOGIN


def reads_ledger_as_written(rules: LicensingRules) -> bool:
    """Whether `team_spans` is exactly `ledger_spans` under these rules: counted from
    the first email, never lapsing. A reader may then take the seats held at a
    moment as the sum of the ledger's deltas up to it (each user's rows alternate
    +1/-1), without building anyone's spans."""
    return rules.team_counts_from is TeamCountsFrom.FIRST_EMAIL and not rules.inactive_after_days


def _from(spans: list[Span], start: float | None) -> list[Span]:
    """The parts of `spans` from `start` on; none when it never comes."""
    if start is None:
        return []
    return [
        (max(low, start), high) for low, high in spans if high is None or high > max(low, start)
    ]


def _while_active(spans: list[Span], person: Person, grace: float) -> list[Span]:
    """Keep the parts of `spans` within `grace` after the seat began or after any
    counted email, and everything once the person has logged in."""
    opened = [(start, start + grace) for start in sorted({spans[0][0], *person.activity})]
    if person.login_at is not None:
        opened.append((person.login_at, math.inf))
    windows: list[list[float]] = []
    for low, high in sorted(opened):
        if windows and low <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], high)
        else:
            windows.append([low, high])
    kept: list[Span] = []
    for low, high in spans:
        for w_low, w_high in windows:
            start = max(low, w_low)
            end = w_high if high is None else min(high, w_high)
            if start < end:
                kept.append((start, None if end == math.inf else end))
    return kept


def seats_at(spans: Iterable[Span], moment: float) -> int:
    return sum(1 for start, end in spans if start <= moment and (end is None or end > moment))


def notified_seats_at(people: Iterable[Person], rules: LicensingRules, moment: float) -> int:
    """Team seats held at `moment` only because the system emailed the person: the
    seat was opened by a notification and the person had not written by then."""
    return sum(
        1
        for p in people
        if p.notified
        and (p.wrote_at is None or p.wrote_at > moment)
        and seats_at(team_spans(p, rules), moment)
    )


@dataclass(frozen=True)
class Month:
    label: str  # "2026-01"
    start: float
    end: float


def months_between(first: float, last: float) -> list[Month]:
    """Calendar months (UTC) from the one holding `first` to the one holding `last`."""
    moment = datetime.fromtimestamp(first, UTC)
    cursor = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    months = []
    while cursor.timestamp() <= last:
        following = datetime(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1, tzinfo=UTC)
        months.append(Month(cursor.strftime("%Y-%m"), cursor.timestamp(), following.timestamp()))
        cursor = following
    return months


def month_seats(spans: Iterable[Span], months: list[Month]) -> list[tuple[int, int]]:
    """(seats at the month's end, highest count reached during the month) per month."""
    changes = sorted(
        [(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans if end is not None],
        key=lambda change: (change[0], change[1]),  # a seat that ends frees room first
    )
    result, held, i = [], 0, 0
    for month in months:
        while i < len(changes) and changes[i][0] < month.start:
            held += changes[i][1]
            i += 1
        peak = held
        while i < len(changes) and changes[i][0] < month.end:
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


@dataclass(frozen=True)
class ModelMonth:
    seats: int  # held at the month's end
    peak_seats: int  # the highest count reached in the month
    billed_seats: int  # what the bill is for (monthly or annual true-up)
    cost: float  # prices.price(billed_seats, rule)

    def as_row(self) -> dict[str, int | float]:
        return {
            "seats": self.seats,
            "peak_seats": self.peak_seats,
            "billed_seats": self.billed_seats,
            "cost": self.cost,
        }


def model_months(
    spans: Iterable[Span], months: list[Month], rule: PriceRule, billing: Billing
) -> list[ModelMonth]:
    return priced_months(month_seats(spans, months), rule, billing)


def priced_months(
    counts: list[tuple[int, int]], rule: PriceRule, billing: Billing
) -> list[ModelMonth]:
    """`month_seats` counts (held at the end, peak) billed and priced month by month."""
    bills = billed([peak for _, peak in counts], billing)
    return [
        ModelMonth(held, peak, bill, price(bill, rule))
        for (held, peak), bill in zip(counts, bills, strict=True)
    ]


@dataclass(frozen=True)
class MonthBill:
    month: Month
    support: ModelMonth
    team: ModelMonth
    team_seats_from_notifications: int  # of `team.seats`, held only by notification

    @property
    def cheaper_model(self) -> str:
        return cheaper_model(
            ModelCost(self.support.billed_seats, 0.0, self.support.cost),
            ModelCost(self.team.billed_seats, 0.0, self.team.cost),
        )

    def as_row(self) -> dict[str, object]:
        """The month as the JSON contract has it: `report --by month`, `sweep --months`
        and `forecast` all write this shape (each adds its own keys)."""
        return {
            "month": self.month.label,
            "support": self.support.as_row(),
            "team": {
                **self.team.as_row(),
                "seats_from_notifications": self.team_seats_from_notifications,
            },
            "cheaper_model": self.cheaper_model,
        }


def bill(
    pricing: Pricing,
    rules: LicensingRules,
    support_spans: Iterable[Span],
    people: Iterable[Person],
    months: list[Month],
) -> list[MonthBill]:
    """Every month's seats and cost under both models, the org's rules applied."""
    people = list(people)
    team = [span for p in people for span in team_spans(p, rules)]
    notified = [notified_seats_at(people, rules, month_end(m)) for m in months]
    support = month_seats(support_spans, months)
    return bill_counts(pricing, rules, months, support, month_seats(team, months), notified)


def month_end(month: Month) -> float:
    """Seats at the month's end: the moment just before the next month starts."""
    return month.end - 1e-6


def bill_counts(
    pricing: Pricing,
    rules: LicensingRules,
    months: list[Month],
    support: list[tuple[int, int]],
    team: list[tuple[int, int]],
    notified: list[int],
) -> list[MonthBill]:
    """`bill` from counts already taken: each model's `month_seats` and the Team seats
    held only by notification at each `month_end`. A reader that counts the ledger
    as written (`reads_ledger_as_written`) bills through here without any spans."""
    support_rows = priced_months(support, pricing.support, rules.billing)
    team_rows = priced_months(team, pricing.team, rules.billing)
    return [
        MonthBill(month, s, t, n)
        for month, s, t, n in zip(months, support_rows, team_rows, notified, strict=True)
    ]


@dataclass
class _Facts:
    created_at: float
    events: list[tuple[float, int]] = field(default_factory=list)
    activity: list[float] = field(default_factory=list)
    login_at: float | None = None
    wrote_at: float | None = None
    notified: bool = False
    team: bool = False
    agent: bool = False


class SeatBook:
    """The seat ledger in memory: the same rows the pipeline's ledger writes, fed by
    signals in time order, for models that run without a database."""

    def __init__(self) -> None:
        self._facts: dict[str, _Facts] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._facts

    def holds_team(self, key: str) -> bool:
        facts = self._facts.get(key)
        return facts is not None and facts.team

    def is_agent(self, key: str) -> bool:
        facts = self._facts.get(key)
        return facts is not None and facts.agent

    def _person(self, key: str, at: float) -> _Facts:
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = _Facts(created_at=at)
        return facts

    def directory(self, key: str, at: float, agent: bool, logs_in: bool) -> None:
        """A directory entry reconciled at `at` (a person never seen before)."""
        facts = self._person(key, at)
        wanted = directory_seats(agent, logs_in, facts.wrote_at is not None, removed=False)
        facts.agent = wanted.support
        if logs_in:
            facts.login_at = at if facts.login_at is None else facts.login_at
        if wanted.team:
            self._open(facts, at, Signal.LOGIN)

    def create(self, key: str, at: float) -> None:
        """A user record without a seat (yet)."""
        self._person(key, at)

    def wrote(self, key: str, at: float, signal: Signal = Signal.WROTE) -> None:
        """A counted delivery attributed to the person (email, web form, shared account)."""
        # The sweep's hot path: one call per counted message, so written out flat.
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = _Facts(created_at=at)
        facts.activity.append(at)
        if facts.wrote_at is None:
            facts.wrote_at = at
        if signal is Signal.WEB_FORM and facts.login_at is None:
            facts.login_at = at
        if not facts.team:
            self._open(facts, at, signal)

    def noise(self, key: str, at: float) -> None:
        self._open(self._person(key, at), at, Signal.NOISE, wrote=True)

    def cc_created(self, key: str, at: float) -> None:
        self._open(self._person(key, at), at, Signal.CC)

    def notified(self, key: str, at: float) -> None:
        self._open(self._person(key, at), at, Signal.NOTIFIED)

    def _open(self, facts: _Facts, at: float, signal: Signal, wrote: bool = False) -> None:
        if wrote and facts.wrote_at is None:
            facts.wrote_at = at  # billed noise is a first_seen sender too
        if facts.team:
            return
        facts.team = True
        facts.notified = signal is Signal.NOTIFIED
        facts.events.append((at, 1))

    def team_holders(self) -> int:
        return sum(1 for f in self._facts.values() if f.team)

    def support_holders(self) -> int:
        return sum(1 for f in self._facts.values() if f.agent)

    def people(self) -> list[Person]:
        return [
            Person(
                created_at=f.created_at,
                team_events=tuple(f.events),
                activity=tuple(f.activity),
                login_at=f.login_at,
                wrote_at=f.wrote_at,
                notified=f.notified,
            )
            for f in self._facts.values()
        ]

    def support_spans(self) -> list[Span]:
        """Agents hold their Support seat from the reconciliation that found them on."""
        return [(f.created_at, None) for f in self._facts.values() if f.agent]
