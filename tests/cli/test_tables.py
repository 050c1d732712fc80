"""Tables a person reads: at 80 columns and in a pipe, addresses and outcomes are
whole or cut with an ellipsis, never broken mid-word; `--wide` shows them whole;
times to the second; one money format."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from simulator.cli import app
from simulator.cli.render import Format, money_text, render, report_tables, table_cell
from simulator.reports.columns import MESSAGE_COLUMNS

ADDRESS = "carol.longname@customer-subsidiary.example"
ROW = {
    "id": 1,
    "received_at": "2026-11-28T12:00:01.123456Z",
    "sender": ADDRESS,
    "subject": "Cannot export the monthly report to CSV since the upgrade",
    "outcome": "created_issue",
    "reason": None,
    "issue": 1,
    "channel": "smtp",
    "message_id": "20250304091231.4f2a@mail.customer-subsidiary.example",
}


def rendered(wide: bool = False) -> str:
    """The messages table as a pipe (80 columns, no terminal) gets it."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, soft_wrap=False, force_terminal=False)
    render([ROW], MESSAGE_COLUMNS, Format.TABLE, console, title="messages", wide=wide)
    return buffer.getvalue()


def test_addresses_are_never_broken_mid_word_at_80_columns() -> None:
    text = rendered()
    assert all(len(line) <= 80 for line in text.splitlines())
    # A piece of the address on a line of its own would be a mid-word break.
    for line in text.splitlines():
        if "subsidiary" in line or "example" in line:
            assert "carol" in line or "2025" in line, line
    assert "…" in text


def test_wide_shows_every_cell_whole() -> None:
    text = rendered(wide=True)
    assert ADDRESS in text and ROW["message_id"] in text and ROW["subject"] in text
    assert max(len(line) for line in text.splitlines()) > 80


def test_times_to_the_second_and_one_money_format() -> None:
    assert table_cell("received_at", ROW["received_at"]) == "2026-11-28T12:00:01Z"
    assert table_cell("support_cost", 1900) == "1,900.00"
    assert table_cell("margin", 75.0) == "75.00"
    assert table_cell("seats", 1900) == "1900"
    assert money_text(30800) == "30,800.00"
    buffer = io.StringIO()
    console = Console(file=buffer, width=120)
    report = {
        "currency": "USD",
        "period": "month",
        "organization": "Acme",
        "support": {"seats": 76, "unit_price": 25.0, "cost": 1900.0},
        "team": {
            "seats": 190,
            "unit_price": 10.0,
            "cost": 1900.0,
            "noise_senders_filtered": 0,
        },
        "deliveries": {},
        "users": {},
        "breakeven_team_seats": 190,
        "cheaper_model": "support",
        "recommended_model": "support",
        "reasons": [],
    }
    for view in report_tables(report):
        console.print(view)
    assert "1,900.00" in buffer.getvalue() and "25.00" in buffer.getvalue()


def test_messages_table_and_csv_have_the_channel(tmp_path: Path) -> None:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert runner.invoke(app, ["db", "upgrade", "--db", db]).exit_code == 0
    csv = runner.invoke(app, ["messages", "--db", db, "-f", "csv"])
    assert csv.exit_code == 0
    assert "channel" in csv.stdout.splitlines()[0].split(",")
    assert "channel" in rendered()
