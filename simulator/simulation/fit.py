"""Fitting the traffic model to real deliveries: a scenario file `simulate` and
`sweep` accept, estimated from what a database holds (imported history or live intake).

Each delivery is put in one of the traffic model's bands, by its headers and by
what intake made of it: noise (filtered as an auto-reply, bounce, list or
no-reply mail), a reply (In-Reply-To, References or an `[Issue #N]` tag), a
colleague's new mail, or a customer's new mail. The shares of those bands are
the model's shares. Customer mail and auto-replies are the draws of the model's
customer population: a Zipf law over `customers` people plus a chance of a
brand-new sender. The skew, the population and the new-sender chance are fitted
so that the expected rank-frequency curve, the number of people seen twice or
more and the number seen once all match what was observed.

`fit_facts` is pure (facts in, a `Fit` out), so it can be tested without a
database; `read_facts` reads the facts; `scenario_toml` writes the file.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from simulator.domain import Outcome
from simulator.errors import ConfigError
from simulator.licensing import seats
from simulator.org import Org
from simulator.simulation.traffic import NOISE_KINDS
from simulator.store.models import Delivery, OutboxMessage

TAG = re.compile(r"\[Issue #\d+\]", re.IGNORECASE)
SKIPPED = (Outcome.DUPLICATE.value, Outcome.QUARANTINED.value)
MIN_MESSAGES = 100  # fewer and every share is mostly noise
MIN_CUSTOMERS = 20  # distinct customer senders: fewer and the skew is a guess
MIN_DAYS = 7.0
MONTH_DAYS = 30.0  # a scenario's month, as `sweep` counts one
MAX_POPULATION = 2_000_000


@dataclass(frozen=True, slots=True)
class MailFacts:
    """What the fit needs of one delivery."""

    at: datetime
    sender: str
    outcome: str
    reason: str
    reply: bool  # In-Reply-To or References
    tagged: bool  # an `[Issue #N]` tag in the subject
    cc: int  # distinct Cc addresses


@dataclass(frozen=True)
class Measured:
    """A figure, and the months it was measured over."""

    value: float
    note: str


@dataclass
class Fit:
    """The fitted parameters, each with its measured figure, and the fit's quality."""

    months: list[str]
    first: datetime
    last: datetime
    values: dict[str, Measured] = field(default_factory=dict)
    noise: dict[str, Measured] = field(default_factory=dict)
    extra: dict[str, Measured] = field(default_factory=dict)  # written to [fit]
    monthly: list[dict[str, float | int | str]] = field(default_factory=list)

    @property
    def span(self) -> str:
        return self.months[0] if len(self.months) == 1 else f"{self.months[0]}..{self.months[-1]}"


def read_facts(session: Session) -> list[MailFacts]:
    """Every delivery's facts, oldest first; Cc is read from the stored headers."""
    headers = BytesHeaderParser(policy=compat32)
    query = select(
        Delivery.received_at,
        Delivery.sender,
        Delivery.outcome,
        Delivery.reason,
        Delivery.in_reply_to,
        Delivery.references,
        Delivery.subject,
        Delivery.raw,
    ).order_by(Delivery.received_at, Delivery.id)
    facts = []
    for at, sender, outcome, reason, in_reply_to, references, subject, raw in session.execute(
        query.execution_options(yield_per=500)
    ):
        head = bytes(raw or b"").split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        cc = headers.parsebytes(head).get_all("cc", [])
        addresses = {a.lower() for _, a in getaddresses([str(v) for v in cc]) if "@" in a}
        facts.append(
            MailFacts(
                at if at.tzinfo else at.replace(tzinfo=UTC),
                (sender or "").lower(),
                outcome,
                reason or "",
                bool(in_reply_to or references),
                bool(TAG.search(subject or "")),
                len(addresses),
            )
        )
    return facts


def notifications(session: Session) -> int:
    return int(session.scalar(select(func.count(OutboxMessage.id))) or 0)


def _band(mail: MailFacts, org: Org) -> str:
    if mail.outcome == Outcome.FILTERED.value and mail.reason in NOISE_KINDS:
        return mail.reason
    if mail.reply or mail.tagged:
        return "reply"
    if org.is_internal(mail.sender):
        return "internal"
    return "customer"


def fit_facts(facts: list[MailFacts], org: Org, notified: int = 0) -> Fit:
    """The traffic parameters that best explain `facts`; ConfigError when too few."""
    mail = [m for m in facts if m.outcome not in SKIPPED and m.sender]
    if not mail:
        raise ConfigError("too little data to fit: the database holds no deliveries")
    first, last = mail[0].at, mail[-1].at
    days = (last - first).total_seconds() / 86400
    bands = [_band(m, org) for m in mail]
    kept = [m for m, b in zip(mail, bands, strict=True) if b not in NOISE_KINDS]
    draws = [
        m.sender
        for m, b in zip(mail, bands, strict=True)
        if b == "customer" or (b == "auto_reply" and not org.is_internal(m.sender))
    ]
    people = Counter(draws)
    if len(kept) < MIN_MESSAGES:
        raise ConfigError(
            f"too little data to fit: {len(kept)} non-noise message(s), at least "
            f"{MIN_MESSAGES} needed"
        )
    if len(people) < MIN_CUSTOMERS:
        raise ConfigError(
            f"too little data to fit: {len(people)} distinct customer sender(s), at least "
            f"{MIN_CUSTOMERS} needed"
        )
    if days < MIN_DAYS:
        raise ConfigError(
            f"too little data to fit: the mail spans {days:.1f} day(s), at least "
            f"{MIN_DAYS:g} needed"
        )
    months = [m.label for m in seats.months_between(seats.stamp(first), seats.stamp(last))]
    fit = Fit(months, first, last)
    total = len(mail)
    span = fit.span
    counts = Counter(bands)
    replies = [m for m, b in zip(mail, bands, strict=True) if b == "reply"]

    per_month = total / days * MONTH_DAYS
    fit.values["emails"] = Measured(
        round(per_month), f"{total} deliveries over {days:.1f} days ({span}), per 30 days"
    )
    fit.values["days"] = Measured(MONTH_DAYS, "one month per scenario run")
    fit.monthly = _monthly(mail, bands, first, last)
    trend, trend_note = _trend(fit.monthly)
    fit.extra["volume_growth_per_year"] = Measured(round(trend, 4), trend_note)

    for kind in NOISE_KINDS:
        fit.noise[kind] = Measured(
            round(counts[kind] / total, 4), f"{counts[kind]} of {total} filtered as {kind} ({span})"
        )
    fit.values["reply_share"] = Measured(
        round(counts["reply"] / total, 4), f"{counts['reply']} of {total} are replies ({span})"
    )
    tagged = sum(1 for m in replies if m.tagged and not m.reply)
    fit.values["tag_reply_share"] = Measured(
        round(tagged / len(replies), 4) if replies else 0.5,
        f"{tagged} of {len(replies)} replies thread by an [Issue #N] tag only ({span})",
    )
    fit.values["internal_share"] = Measured(
        round(counts["internal"] / total, 4),
        f"{counts['internal']} of {total} are new mail from colleagues ({span})",
    )
    staff = {m.sender for m, b in zip(mail, bands, strict=True) if b == "internal"}
    staff -= set(org.directory)
    fit.values["internal_staff"] = Measured(
        len(staff), f"colleagues outside the directory who wrote in ({span})"
    )
    cc = sum(m.cc for m in kept)
    fit.values["cc_per_message"] = Measured(
        round(cc / len(kept), 4),
        f"{cc} Cc address(es) on {len(kept)} non-noise message(s) ({span})",
    )
    companies = {s.rpartition("@")[2] for s in people}
    fit.values["companies"] = Measured(len(companies), f"distinct customer domains ({span})")
    _population(fit, people, span)

    other = Counter(
        m.reason
        for m, b in zip(mail, bands, strict=True)
        if m.outcome == Outcome.FILTERED.value and b not in NOISE_KINDS
    )
    for reason, n in sorted(other.items()):
        fit.extra[f"filtered_{reason}_share"] = Measured(
            round(n / total, 4), f"{n} of {total} filtered as {reason}, not noise ({span})"
        )
    counted = sum(1 for m in mail if m.outcome in (Outcome.CREATED_ISSUE, Outcome.THREADED))
    fit.extra["notifications_per_counted_message"] = Measured(
        round(notified / counted, 4) if counted else 0.0,
        f"{notified} automatic email(s) for {counted} counted message(s) ({span})",
    )
    return fit


def _monthly(
    mail: list[MailFacts], bands: list[str], first: datetime, last: datetime
) -> list[dict[str, float | int | str]]:
    """Per calendar month: deliveries, the share of the month covered, new senders."""
    rows: list[dict[str, float | int | str]] = []
    seen: set[str] = set()
    months = [
        (datetime.fromtimestamp(m.start, UTC), datetime.fromtimestamp(m.end, UTC))
        for m in seats.months_between(seats.stamp(first), seats.stamp(last))
    ]
    index = 0
    for start, end in months:
        covered = (min(end, last) - max(start, first)).total_seconds()
        length = (end - start).total_seconds()
        volume = draws = new = 0
        while index < len(mail) and mail[index].at < end:
            volume += 1
            if bands[index] == "customer":
                draws += 1
                new += mail[index].sender not in seen
                seen.add(mail[index].sender)
            index += 1
        rows.append(
            {
                "month": start.strftime("%Y-%m"),
                "deliveries": volume,
                "coverage": round(max(covered, 0.0) / length, 3),
                "new_sender_share": round(new / draws, 4) if draws else 0.0,
            }
        )
    return rows


def _trend(monthly: list[dict[str, float | int | str]]) -> tuple[float, str]:
    """Yearly growth of the volume: a log-linear fit over months at least half covered."""
    points = [
        (i, float(r["deliveries"]) / float(r["coverage"]))
        for i, r in enumerate(monthly)
        if float(r["coverage"]) >= 0.5 and int(r["deliveries"]) > 0
    ]
    if len(points) < 3:
        return 0.0, f"{len(points)} month(s) with data: at least 3 are needed for a trend"
    xs = [x for x, _ in points]
    ys = [math.log(y) for _, y in points]
    slope, _, r2 = _line(xs, ys)
    names = f"{monthly[points[0][0]]['month']}..{monthly[points[-1][0]]['month']}"
    yearly = math.exp(slope * 12) - 1
    return yearly, (
        f"log-linear fit over {len(points)} months ({names}): {math.exp(slope) - 1:+.2%} "
        f"a month, R^2 {r2:.2f}"
    )


def _line(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares y = a + b x: (b, a, R^2)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx if sxx else 0.0
    r2 = (sxy * sxy / (sxx * syy)) if sxx and syy else 1.0
    return slope, my - slope * mx, r2


# -- the customer population: Zipf skew, size and the new-sender chance --------------


EXACT_RANKS = 2000  # ranks summed one by one; beyond them, in geometric buckets


def _norm(population: int, skew: float) -> float:
    """Sum of rank**-skew over the population: exact for the head, an integral for the
    tail (which varies slowly there), so a large population costs no more than a small."""
    head = min(population, EXACT_RANKS)
    total = sum(rank**-skew for rank in range(1, head + 1))
    if population > head:
        low, high = head + 0.5, population + 0.5
        if abs(skew - 1.0) < 1e-9:
            total += math.log(high / low)
        else:
            total += (high ** (1 - skew) - low ** (1 - skew)) / (1 - skew)
    return total


def _ranks(population: int) -> Iterator[tuple[float, int]]:
    """(representative rank, how many ranks it stands for): every rank of the head,
    then buckets 1% wide."""
    for rank in range(1, min(population, EXACT_RANKS) + 1):
        yield float(rank), 1
    low = EXACT_RANKS + 1
    while low <= population:
        high = min(population, int(low * 1.01) + 1)
        yield math.sqrt(low * high), high - low + 1
        low = high + 1


def _expected(population: int, skew: float, draws: float) -> tuple[float, float]:
    """Expected (people seen once, people seen twice or more) after `draws` Zipf draws."""
    norm = _norm(population, skew)
    once = twice = 0.0
    for rank, many in _ranks(population):
        w = rank**-skew / norm
        if w >= 1:
            twice += many
            continue
        none = math.exp(draws * math.log1p(-w))
        single = draws * w * none / (1 - w)
        once += single * many
        twice += (1 - none - single) * many
    return once, twice


def _solve_population(skew: float, draws: float, twice_seen: int) -> int:
    """The population whose expected count of people seen twice or more matches."""
    low, high = max(1, twice_seen), max(2, twice_seen * 2)
    while high < MAX_POPULATION and _expected(high, skew, draws)[1] < twice_seen:
        low, high = high, high * 2
    while high - low > max(1, low // 200):
        middle = (low + high) // 2
        if _expected(middle, skew, draws)[1] < twice_seen:
            low = middle
        else:
            high = middle
    return high


def _bins(largest: int) -> list[tuple[int, int]]:
    """Frequency classes: seen 2, 3, ... 9 times, then classes that double in width."""
    edges = [(k, k) for k in range(2, 10)]
    low = 10
    while low <= largest:
        edges.append((low, low * 2 - 1))
        low *= 2
    return edges


def _class_counts(
    population: int, skew: float, draws: float, bins: list[tuple[int, int]]
) -> list[float]:
    """Expected people in each frequency class (Poisson counts per rank)."""
    norm = _norm(population, skew)
    expected = [0.0] * len(bins)
    top = bins[-1][1]
    for rank, many in _ranks(population):
        mean = draws * rank**-skew / norm
        spread = 10 * math.sqrt(mean) + 10
        low, high = max(2, int(mean - spread)), min(top, int(mean + spread) + 1)
        if low > high:
            continue
        log_mean = math.log(mean)
        for index, (first, last) in enumerate(bins):
            if last < low or first > high:
                continue
            expected[index] += many * sum(
                math.exp(k * log_mean - mean - math.lgamma(k + 1))
                for k in range(max(first, low), min(last, high) + 1)
            )
    return expected


def _deviance(observed: list[int], expected: list[float]) -> float:
    """Poisson deviance of the frequency classes: 0 when they match exactly."""
    total = 0.0
    for o, e in zip(observed, expected, strict=True):
        e = max(e, 1e-9)
        total += 2 * ((o * math.log(o / e) if o else 0.0) - (o - e))
    return total


def _skew(ranked: list[int], twice_seen: int, draws: float) -> tuple[float, int, float]:
    """The Zipf exponent and population whose expected numbers of people seen 2, 3,
    4, ... times match the observed ones best (people seen once are left out: new
    senders are among them). Returns (skew, population, deviance per class)."""
    bins = _bins(ranked[0])
    observed = [sum(1 for c in ranked if first <= c <= last) for first, last in bins]

    def error(skew: float) -> tuple[float, int]:
        population = _solve_population(skew, draws, max(1, twice_seen))
        return _deviance(observed, _class_counts(population, skew, draws, bins)), population

    low, high = 0.05, 4.0
    for _ in range(28):  # golden-section search: the deviance is unimodal in the skew
        a = high - (high - low) / 1.618
        b = low + (high - low) / 1.618
        if error(a)[0] < error(b)[0]:
            high = b
        else:
            low = a
    skew = (low + high) / 2
    deviance, population = error(skew)
    return skew, population, deviance / len(bins)


def _population(fit: Fit, people: Counter[str], span: str) -> None:
    ranked = sorted(people.values(), reverse=True)
    draws = sum(ranked)
    once = sum(1 for c in ranked if c == 1)
    twice_seen = len(ranked) - once
    new = 0.0
    for _ in range(4):  # skew, population and new senders settle in a few rounds
        zipf_draws = max(1.0, draws - new)
        skew, population, quality = _skew(ranked, twice_seen, zipf_draws)
        expected_once, _ = _expected(population, skew, zipf_draws)
        new = min(max(0.0, once - expected_once), float(once))
    classes = len(_bins(ranked[0]))
    fit.values["customers"] = Measured(
        population,
        f"{len(ranked)} customer sender(s) seen, {twice_seen} of them twice or more; "
        f"the Zipf population that explains them ({span})",
    )
    fit.values["zipf_exponent"] = Measured(
        round(skew, 3),
        f"fitted to how many senders wrote 2, 3, 4... times ({classes} classes), "
        f"deviance {quality:.2f} per class, about 1 is a good fit ({span})",
    )
    fit.values["new_sender_share"] = Measured(
        round(new / draws, 4),
        f"{once} sender(s) seen once, {once - new:.0f} of them expected from the Zipf "
        f"population; {new:.0f} new of {draws} customer mail(s) ({span})",
    )
    fit.extra["zipf_deviance_per_class"] = Measured(
        round(quality, 3), "Poisson deviance per frequency class: about 1 fits, above 4 is poor"
    )
    fit.extra["distinct_senders"] = Measured(len(ranked), f"customer senders seen ({span})")


# -- the scenario file -----------------------------------------------------------------


ORDER = (
    "emails",
    "days",
    "start",
    "seed",
    "customers",
    "companies",
    "zipf_exponent",
    "new_sender_share",
    "internal_share",
    "internal_staff",
    "reply_share",
    "tag_reply_share",
    "cc_per_message",
)


def _value(value: float | int | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    return repr(value)


def _lines(table: dict[str, Measured]) -> Iterator[str]:
    for key, measured in table.items():
        yield f"{key} = {_value(measured.value)}  # {measured.note}"


def scenario_toml(fit: Fit, org_path: Path | None, name: str) -> str:
    """The scenario file: [org], [traffic] and [traffic.noise], and [fit] for the rest."""
    start = datetime(fit.first.year, fit.first.month, 1, tzinfo=UTC)
    traffic = {
        **fit.values,
        "start": Measured(start.strftime("%Y-%m-%dT%H:%M:%SZ"), "the first month of the data"),
        "seed": Measured(1, "any seed: the fit describes a distribution, not the mail itself"),
    }
    ordered = {key: traffic[key] for key in ORDER if key in traffic}
    lines = [
        f"# Fitted by `intake-sim fit` from the deliveries of {fit.span}.",
        "# Each value's comment is the figure it was measured from.",
        f"name = {_quoted(name)}",
        "",
        "[org]",
    ]
    if org_path is not None:
        lines.append(f"path = {_quoted(str(org_path.resolve()))}")
    else:
        lines.append("# the sample org; point path at your org file")
    lines += ["", "[traffic]", *_lines(ordered), "", "[traffic.noise]", *_lines(fit.noise)]
    lines += ["", "# Read by `intake-sim forecast`; simulate and sweep ignore this table.", "[fit]"]
    lines.append(f"months = [{', '.join(_quoted(m) for m in fit.months)}]")
    lines += list(_lines(fit.extra))
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fit_rows(fit: Fit) -> list[dict[str, object]]:
    """The fit as rows (parameter, value, measured from), for tables and JSON."""
    tables: Iterable[tuple[str, dict[str, Measured]]] = (
        ("traffic", fit.values),
        ("traffic.noise", fit.noise),
        ("fit", fit.extra),
    )
    return [
        {"table": table, "parameter": key, "value": m.value, "measured": m.note}
        for table, values in tables
        for key, m in values.items()
    ]
