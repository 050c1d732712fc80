"""Hostile subjects and names reach the terminal neutralised and spreadsheets inert."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.cli.render import csv_cell, safe_text
from tests.support.listeners import Listener

runner = CliRunner()
ESCAPES = ("\x1b", "\x07", "\x9b", "\x00")


def hostile(subject: str, tag: str) -> bytes:
    return (
        f"From: =?utf-8?q?Eve_=1B[2J=07?= <{tag}@customer.example>\r\n"
        f"To: support@acme.example\r\nSubject: {subject}\r\nMessage-ID: <{tag}@safe.test>\r\n"
        "\r\nhello\r\n"
    ).encode()


async def test_terminal_tables_show_no_control_characters(listener: Listener) -> None:
    subject = "=?utf-8?q?=1B[31mRED=1B[0m_=1B]0;title=07_=C2=9B2J?="
    assert (await listener.send(hostile(subject, "ansi")))[0] == 250
    db = listener.store.url
    raw = runner.invoke(app, ["messages", "--db", db, "--format", "json"])
    assert "\x1b[31m" in json.loads(raw.stdout)[0]["subject"]  # stored as received
    for command in ("messages", "issues", "users"):
        shown = runner.invoke(app, [command, "--db", db])
        assert shown.exit_code == 0, shown.output
        assert not any(c in shown.stdout for c in ESCAPES), repr(shown.stdout)
    # shown, defused (whole: --wide keeps the narrowed subject column from folding it)
    assert "RED" in runner.invoke(app, ["messages", "--db", db, "--wide"]).stdout


async def test_csv_export_defuses_formulas(listener: Listener) -> None:
    formulas = ["=HYPERLINK(x)", "+1+1", "-2+3", "@SUM(A1)"]
    for n, subject in enumerate(formulas):
        assert (await listener.send(hostile(subject, f"csv{n}")))[0] == 250
    shown = runner.invoke(app, ["messages", "--db", listener.store.url, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(shown.stdout)))
    assert sorted(row["subject"] for row in rows) == sorted("'" + f for f in formulas)


def test_cell_helpers() -> None:
    assert safe_text("a\x1b[2Jb\r\nc\x9b") == "a?[2Jb  c?"
    assert safe_text(None) == "-"
    assert csv_cell("=1+1") == "'=1+1" and csv_cell("plain") == "plain"
    assert csv_cell(True) == "true" and csv_cell(None) == ""


def test_json_rows_are_written_as_json_dumps_writes_them() -> None:
    """The row-by-row JSON writer gives the bytes of json.dumps(indent=2), whatever the rows."""
    import io
    import json

    from simulator.cli.render import write_json_rows

    cases: list[list[dict[str, object]]] = [
        [],
        [{}],
        [{"email": "jürgen@bücher.example", "n": 3, "x": 1.5, "ok": True, "none": None}],
        [{"a": 'line\nbreak "quoted" \\ tab\t'}, {"nested": {"k": [1, 2, {"z": None}]}}],
        [{"list": []}, {"dict": {}}, {"s": "\u2028\x00"}],
        [{"big": 10**30, "neg": -1, "f": float("nan"), "i": float("inf"), "e": 1e-7}],
    ]
    for rows in cases:
        out = io.StringIO()
        write_json_rows(rows, out)
        assert out.getvalue() == json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
