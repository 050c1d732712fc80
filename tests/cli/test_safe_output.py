"""Hostile subjects and names reach the terminal neutralised and spreadsheets inert."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

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


async def test_every_format_carries_no_raw_control_or_bidi_character(
    listener: Listener,
) -> None:
    # ESC, BEL, CSI (U+009B), OSC (U+009D) and the right-to-left override (U+202E).
    subject = "=?utf-8?q?=1B[2J=07_=C2=9B31m_=C2=9D0;t=07_invoice=E2=80=AEfdp.exe?="
    assert (await listener.send(hostile(subject, "bidi")))[0] == 250
    db = listener.store.url
    raw_json = runner.invoke(app, ["messages", "--db", db, "--format", "json"]).stdout
    assert not any(c in raw_json for c in ("\x9b", "\x9d", "\u202e", "\x1b", "\x07"))
    assert "\\u009b" in raw_json and "\\u202e" in raw_json
    # ... and a reader of the JSON still gets the subject exactly as received.
    assert json.loads(raw_json)[0]["subject"].endswith("invoice\u202efdp.exe")
    for args in (["--format", "csv"], ["--wide"]):
        shown = runner.invoke(app, ["messages", "--db", db, *args]).stdout
        for bad in ("\x1b", "\x07", "\x9b", "\x9d", "\u202e"):
            assert bad not in shown, (args, bad, shown)
        assert "invoice?fdp.exe" in shown


async def test_csv_formulas_after_a_separator_or_in_fullwidth_are_defused(
    listener: Listener,
) -> None:
    subjects = {
        "semi": ("x;=1+1", "x;'=1+1"),
        "fullwidth": ("=?utf-8?q?=EF=BC=9D1+1?=", "'\uff1d1+1"),
        "pipe": ("a| @SUM(A1)", "a| '@SUM(A1)"),
    }
    for tag, (subject, _) in subjects.items():
        assert (await listener.send(hostile(subject, tag)))[0] == 250
    shown = runner.invoke(app, ["messages", "--db", listener.store.url, "--format", "csv"])
    got = sorted(row["subject"] for row in csv.DictReader(io.StringIO(shown.stdout)))
    assert got == sorted(expected for _, expected in subjects.values())


def test_cell_helpers() -> None:
    assert safe_text("a\x1b[2Jb\r\nc\x9b") == "a?[2Jb  c?"
    assert safe_text(None) == "-"
    assert csv_cell("=1+1") == "'=1+1" and csv_cell("plain") == "plain"
    assert csv_cell(True) == "true" and csv_cell(None) == ""
    assert csv_cell("a\x1b[2J\x07") == "a?[2J?" and csv_cell("x;=1") == "x;'=1"
    assert csv_cell("\uff0b1") == "'\uff0b1" and csv_cell("Re: a - b, c") == "Re: a - b, c"
    assert csv_cell(" =1+1") == "' =1+1"  # a subject header loses the space; a name may not
    assert safe_text("\u2066abc\u2069\u200f") == "?abc??"


def test_json_rows_are_written_as_to_json_writes_them() -> None:
    """The row-by-row JSON writer gives the bytes of to_json (json.dumps(indent=2) with the
    unsafe characters escaped), whatever the rows."""
    import io

    from simulator.cli.render import to_json, write_json_rows

    cases: list[list[dict[str, object]]] = [
        [],
        [{}],
        [{"email": "jürgen@bücher.example", "n": 3, "x": 1.5, "ok": True, "none": None}],
        [{"a": 'line\nbreak "quoted" \\ tab\t'}, {"nested": {"k": [1, 2, {"z": None}]}}],
        [{"list": []}, {"dict": {}}, {"s": "\u2028\x00"}, {"c1": "\x9b\u202e"}],
        [{"big": 10**30, "neg": -1, "f": float("nan"), "i": float("inf"), "e": 1e-7}],
    ]
    for rows in cases:
        out = io.StringIO()
        write_json_rows(rows, out)
        assert out.getvalue() == to_json(rows) + "\n"


class _Sink(io.StringIO):
    """A file that notes how many rows its source had given at its first write."""

    def __init__(self, given: list[int]) -> None:
        super().__init__()
        self.given, self.at_first_write = given, None

    def write(self, text: str) -> int:
        if self.at_first_write is None:
            self.at_first_write = self.given[0]
        return super().write(text)


def _counted(listing: list[dict[str, object]], given: list[int]) -> Iterator[dict[str, object]]:
    for row in listing:
        given[0] += 1
        yield row


def test_json_and_csv_rows_are_written_as_they_come() -> None:
    """An iterator of rows is written in batches while it is read, with the bytes of
    the whole list: a listing as large as a table is never held whole."""
    from simulator.cli.render import WRITE_BATCH, to_json, write_csv_rows, write_json_rows

    total = 3 * WRITE_BATCH + 7
    columns = ["email", "n", "note"]
    listing = [{"email": f"u{n}@example.test", "n": n, "note": "=1;|\u202e"} for n in range(total)]
    table = io.StringIO()
    plain = csv.writer(table, lineterminator="\n")
    plain.writerows([columns, *([csv_cell(row[c]) for c in columns] for row in listing)])
    for write, expected in (
        (write_json_rows, to_json(listing) + "\n"),
        (lambda rows, file: write_csv_rows(rows, columns, file), table.getvalue()),
    ):
        given = [0]
        sink = _Sink(given)
        write(_counted(listing, given), sink)
        assert sink.at_first_write is not None and sink.at_first_write < total
        assert sink.getvalue() == expected
