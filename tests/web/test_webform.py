"""The web form's pieces on their own: validation, the message, CSRF tokens, rate limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from simulator.org import Org
from simulator.pipeline import classify
from simulator.pipeline.parse import parse_message
from simulator.web import charts
from simulator.web.form import CsrfTokens, FormInput, RateLimiter, build_message, read_form

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def fields(**overrides: str) -> dict[str, str]:
    return {
        "name": "Quinn",
        "email": "quinn@portal.example",
        "subject": "Help",
        "description": "Text",
        **overrides,
    }


def test_a_good_form_is_trimmed_and_normalised(org: Org) -> None:
    entry, errors = read_form(fields(email="  Quinn@Portal.EXAMPLE ", subject=" Help "), org)
    assert errors == {}
    assert entry.email == "quinn@portal.example"
    assert entry.subject == "Help"


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("email", "", "Required."),
        ("email", "quinn", "Not an email address"),
        ("email", "quinn@localhost", "Not an email address"),
        ("email", "<quinn@portal.example>", "Not an email address"),
        ("email", "quinn@portal.example, eve@evil.example", "Not an email address"),
        ("email", "a..b@portal.example", "Not an email address"),
        ("email", "q" * 65 + "@portal.example", "Not an email address"),
        ("email", "quinn@portal.example\r\nBcc: eve@evil.example", "one line"),
        ("email", "SUPPORT@acme.example", "our own intake address"),
        ("subject", "Hi\nBcc: eve@evil.example", "one line"),
        ("subject", "Hi\u2028there", "one line"),
        ("subject", "s" * 201, "At most 200"),
        ("name", "Eve\rX-Evil: 1", "one line"),
        ("description", "a\x00b", "control characters"),
        ("description", "d" * 10_001, "At most 10,000"),
    ],
)
def test_bad_fields_are_refused(org: Org, field: str, value: str, error: str) -> None:
    _, errors = read_form(fields(**{field: value}), org)
    assert set(errors) == {field}
    assert error in errors[field]


def test_the_message_says_what_the_form_said(org: Org) -> None:
    entry = FormInput(
        name='Zoë "Z" Ünal, Jr.',
        email="zoe@portal.example",
        subject="Ümlaut <b>bold</b> subject",
        description="Line one\nLine two " + "long " * 100,
    )
    raw = build_message(entry, org, AT)
    mail = parse_message(raw, entry.email)
    assert mail.problem is None
    assert (mail.sender, mail.sender_name) == ("zoe@portal.example", entry.name)
    assert mail.subject == entry.subject
    assert mail.text.replace("\r\n", "\n").strip() == entry.description.strip()
    assert mail.to == (org.intake_addresses[0],)
    assert mail.date == AT
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert not classify.is_loop(mail, org.message_id_domain)
    assert classify.noise_reason(mail, entry.email, org.message_id_domain) is None


def test_no_field_can_add_a_header(org: Org) -> None:
    """Even a FormInput that skipped validation cannot smuggle a header in."""
    entry = FormInput("Eve", "eve@portal.example", "Hi\r\nBcc: victim@example.com", "x")
    with pytest.raises(ValueError):
        build_message(entry, org, AT)


def test_csrf_tokens() -> None:
    tokens = CsrfTokens(secret=b"k" * 32, max_age=60)
    token = tokens.issue(now=1000)
    assert tokens.valid(token, token, now=1030)
    assert not tokens.valid(token, token, now=1061)  # too old
    assert not tokens.valid(token, tokens.issue(now=1000), now=1030)  # cookie and field differ
    assert not tokens.valid(None, token, now=1030)
    assert not CsrfTokens(secret=b"o" * 32).valid(token, token, now=1030)  # another process
    stamp, nonce, signature = token.split(".")
    later = f"{int(stamp) + 50}.{nonce}.{signature}"
    assert not tokens.valid(later, later, now=1030)  # the time is signed too


def test_rate_limiter_slides() -> None:
    now = [0.0]
    limiter = RateLimiter(2, window_seconds=60, clock=lambda: now[0])
    assert limiter.allow("a") and limiter.allow("a")
    assert not limiter.allow("a")
    assert limiter.allow("b")
    now[0] = 61.0
    assert limiter.allow("a")
    assert all(RateLimiter(0).allow("a") for _ in range(100))


def test_chart_geometry() -> None:
    report = {
        "currency": "USD",
        "period": "month",
        "support": {"seats": 3, "unit_price": 25.0, "cost": 75.0},
        "team": {"seats": 30, "unit_price": 10.0, "cost": 300.0},
        "breakeven_team_seats": 7,
    }
    cost = charts.cost_chart(report)
    assert [b.width for b in cost.bars] == [charts.PLOT_WIDTH / 4, charts.PLOT_WIDTH]
    seats = charts.seat_chart(report)
    assert seats.marker_x == pytest.approx(charts.LABEL_WIDTH + charts.PLOT_WIDTH * 7 / 30, 0.01)
    ledger = [
        {"model": "support", "delta": 1},
        {"model": "team", "delta": 1},
        {"model": "team", "delta": 1},
        {"model": "team", "delta": -1},
    ]
    lines = charts.seat_lines(ledger, width=40, height=20)
    assert lines.top == 2
    assert lines.points["team"] == (
        "0.0,20.0 10.0,20.0 10.0,20.0 20.0,20.0 20.0,10.0 30.0,10.0 30.0,0.0 40.0,0.0 40.0,10.0"
    )
    assert lines.points["support"].startswith("0.0,20.0 10.0,20.0 10.0,10.0 20.0,10.0")
    long = charts.seat_lines([{"model": "team", "delta": 1}] * 1000, width=1000, height=10)
    corners = long.points["team"].split()
    assert len(corners) <= 2 * (charts.MAX_STEPS + 2)
    assert corners[-1] == "1000.0,0.0"  # the last event is always drawn
    # Streamed once with its count (the ledger from the database), the same chart.
    streamed = iter([{"model": "team", "delta": 1}] * 1000)
    assert charts.seat_lines(streamed, width=1000, height=10, events=1000) == long
    assert charts.seat_lines(iter(ledger), width=40, height=20, events=4) == lines
    empty = charts.seat_lines([], width=40, height=20)  # no ledger yet: a level line
    assert empty.points["team"] == "0.0,20.0 40.0,20.0 40.0,20.0" and empty.events == 0
