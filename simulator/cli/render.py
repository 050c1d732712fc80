"""Output: one renderer for every listing, in table, JSON or CSV.

JSON is the contract (DESIGN.md): plain keys, [] when empty, no markup. Tables
go to stdout through rich; logs and progress go to stderr, so that
`--format json | jq` always works.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

from simulator.reports.safe import defused, json_escaped, json_text

# Characters a spreadsheet starts a formula with, fullwidth forms included (some
# spreadsheets fold U+FF1D into =).
FORMULA_START = "=+-@\uff1d\uff0b\uff0d\uff20"
# A formula character after a separator a spreadsheet may split on, quotes or not
# (`;` in many locales, `|`, tab): such a cell's later pieces start a formula of their own.
FORMULA_AFTER_SEPARATOR = re.compile(f"([;|\t][ ]*)(?=[{re.escape(FORMULA_START)}])")


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def to_json(value: Any) -> str:
    return json_text(value, indent=2)


SCALARS = (str, int, float, bool, type(None))


# Rows written at a time: their text is joined and escaped once, then written.
WRITE_BATCH = 1000


def write_json_rows(rows: Iterable[dict[str, Any]], file: Any) -> None:
    """`to_json(list(rows))` and a newline, written as the rows come: the same bytes,
    without the rows or the whole text (and the encoder's millions of pieces) in
    memory at once.

    With an indent the standard library encodes in Python; a row of scalars is
    written here from the C encoder's scalars instead, several times faster. Any
    other row is encoded whole and indented one level, as inside a list. The unsafe
    characters are escaped once per batch of rows: JSON has them only inside
    strings, so escaping the joined text is escaping each string.
    """
    found = iter(rows)
    first = next(found, None)
    if first is None:
        file.write("[]\n")
        return
    batch = ["[\n", _json_row(first)]
    for row in found:
        batch.append(",\n")
        batch.append(_json_row(row))
        if len(batch) >= 2 * WRITE_BATCH:
            file.write(json_escaped("".join(batch)))
            batch.clear()
    batch.append("\n]\n")
    file.write(json_escaped("".join(batch)))


_TEXT = json.encoder.encode_basestring  # a str as JSON without \\u escapes (ensure_ascii off)
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
_CONSTANTS: dict[object, str] = {None: "null", True: "true", False: "false"}


def _scalar(value: Any) -> str | None:
    """One scalar as json.dumps writes it (unsafe characters still raw), the common
    types without its per-call cost; None for a value that is no scalar."""
    kind = type(value)
    if kind is str:
        return _TEXT(value)
    if kind is int:
        return int.__repr__(value)
    if value is None or kind is bool:
        return _CONSTANTS[value]
    if isinstance(value, SCALARS):
        return _ENCODE(value)  # floats (NaN, Infinity), str or int subclasses
    return None


def _json_row(row: dict[str, Any]) -> str:
    """One row as an item of an indented list, unsafe characters still raw."""
    fields = []
    for key, value in row.items():
        text = _scalar(value)
        if text is None or type(key) is not str:
            return "\n".join("  " + line for line in to_json(row).split("\n"))
        fields.append(f"    {_TEXT(key)}: {text}")
    return "  {\n" + ",\n".join(fields) + "\n  }" if fields else "  {}"


def safe_text(value: Any) -> str:
    """A cell for a terminal: None as '-', controls shown as '?', newlines as spaces."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return defused(str(value).replace("\r", " ").replace("\n", " ").replace("\t", " "))


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula.

    Only text is guarded: numbers we wrote ourselves (a ledger delta of -1) stay numbers.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    text = defused(str(value))
    if ";" in text or "|" in text or "\t" in text:  # else no separator for the pattern to find
        text = FORMULA_AFTER_SEPARATOR.sub(r"\1'", text)
    start = text.lstrip(" ")[:1]
    return "'" + text if start and (start in FORMULA_START or start == "\t") else text


def write_csv_rows(rows: Iterable[dict[str, Any]], columns: list[str], file: Any) -> None:
    """A header row and then each row as it comes, every cell through `csv_cell`;
    written a batch of rows at a time (one write per row to a terminal or pipe costs
    more than the row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for count, row in enumerate(rows, 1):
        writer.writerow([csv_cell(_flat(row.get(c))) for c in columns])
        if count % WRITE_BATCH == 0:
            file.write(buffer.getvalue())
            buffer.seek(0)
            buffer.truncate()
    file.write(buffer.getvalue())


def to_csv(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    text = io.StringIO()
    write_csv_rows(rows, columns, text)
    return text.getvalue()


def _flat(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


# Columns whose words must not break mid-word (`carol@customer` / `.example`): too
# narrow for one, they end in an ellipsis (they still wrap at spaces); `--wide`
# shows every cell whole. Other columns fold to fit.
WHOLE_WORD_COLUMNS = {
    "email",
    "sender",
    "submitter",
    "user",
    "recipient",
    "outcome",
    "reason",
    "model",
    "role",
    "origin",
    "status",
    "kind",
    "channel",
    "message_id",
    "cheaper_model",
}
WIDE = 10_000
MONEY_COLUMNS = {"cost", "unit_price", "margin"}
# An ISO-8601 UTC time from rows.iso(): the table shows it to the second.
FRACTION = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d+Z$")


def money_text(value: float) -> str:
    """The one money format of every table: 1,900.00."""
    return f"{value:,.2f}"


def table_cell(column: str, value: Any) -> str:
    """A value as a table shows it: money as money, times without fractions of a second."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and (column in MONEY_COLUMNS or column.endswith("_cost")):
        return money_text(value)
    text = safe_text(_flat(value))
    return FRACTION.sub(r"\1Z", text)


def table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> Table:
    view = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        overflow = "ellipsis" if column in WHOLE_WORD_COLUMNS else "fold"
        view.add_column(column, overflow=overflow)
    for row in rows:
        view.add_row(*(table_cell(c, row.get(c)) for c in columns))
    return view


def _wide(console: Console) -> Console:
    """A console on the same output whose lines may be as long as a table needs."""
    return Console(
        file=console.file, width=WIDE, soft_wrap=False, force_terminal=console.is_terminal
    )


def render(
    rows: Iterable[dict[str, Any]],
    columns: list[str],
    fmt: Format,
    console: Console,
    title: str | None = None,
    wide: bool = False,
) -> None:
    """`rows` in `fmt`. JSON and CSV are written as the rows come (an iterator is read
    once); a table is laid out from all its rows, so it holds them first."""
    if fmt is Format.JSON:
        write_json_rows(rows, console.file)
        return
    if fmt is Format.CSV:
        write_csv_rows(rows, columns, console.file)
        return
    listed = rows if isinstance(rows, list) else list(rows)
    if listed:
        # --wide: as wide as the table needs, whatever the terminal (or a pipe's 80).
        target = _wide(console) if wide else console
        target.print(table(listed, columns, title))
    else:
        console.print(f"(no {title or 'rows'})")


def report_tables(report: dict[str, Any]) -> list[Table]:
    """The licensing comparison as two small tables: figures, then the reasons."""
    money = f"{report['currency']}/{report['period']}"
    comparison = Table(title=f"Licensing comparison: {safe_text(report['organization'])}")
    for column in ("model", "who is a paid seat", "seats", f"unit price ({money})", "cost"):
        comparison.add_column(column)
    support, team = report["support"], report["team"]
    comparison.add_row(
        "Support",
        "agents",
        str(support["seats"]),
        money_text(support["unit_price"]),
        money_text(support["cost"]),
    )
    comparison.add_row(
        "Team",
        "every user who logs in or emails",
        str(team["seats"]),
        money_text(team["unit_price"]),
        money_text(team["cost"]),
    )
    summary = Table(show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    deliveries = report["deliveries"]
    summary.add_row(
        "deliveries",
        ", ".join(f"{k} {v}" for k, v in deliveries.items()),
    )
    summary.add_row("users", ", ".join(f"{k} {v}" for k, v in report["users"].items()))
    summary.add_row("noise senders filtered", str(team["noise_senders_filtered"]))
    notifications = report.get("notifications") or {}
    if any(notifications.values()):
        summary.add_row("automatic emails", ", ".join(f"{k} {v}" for k, v in notifications.items()))
        summary.add_row(
            "Team without them",
            f"{team['seats_without_notifications']} seat(s), "
            f"{money_text(team['cost_without_notifications'])}",
        )
    pricing = report.get("pricing") or {}
    if pricing.get("book") or pricing.get("pairs"):
        summary.add_row(
            "prices", f"{safe_text(pricing.get('book') or 'org file')}, {pricing.get('term')} term"
        )
    summary.add_row("break-even Team seats", safe_text(report["breakeven_team_seats"]))
    summary.add_row("cheaper model", report["cheaper_model"])
    summary.add_row("recommended model", report["recommended_model"])
    for index, reason in enumerate(report["reasons"]):
        summary.add_row("why" if index == 0 else "", safe_text(reason))
    return [comparison, summary]


def compare_table(data: dict[str, Any]) -> Table:
    """`report --compare`: one column per price book, the same ledger's figures in rows."""
    books = data["books"]
    table = Table(title=f"Price books compared: {safe_text(data['organization'])}")
    table.add_column("", no_wrap=True)
    for book in books:
        table.add_column(safe_text(book["book"]), justify="right", overflow="fold")
    lines: list[tuple[str, Any]] = [
        ("currency / term", lambda b: f"{b['currency']} / {b['term']}"),
        ("Support seats (agents)", lambda b: b["support"]["seats"]),
        ("Support unit price", lambda b: money_text(b["support"]["unit_price"])),
        ("Support cost", lambda b: money_text(b["support"]["cost"])),
        ("Team seats (users)", lambda b: b["team"]["seats"]),
        ("Team unit price", lambda b: money_text(b["team"]["unit_price"])),
        ("Team cost", lambda b: money_text(b["team"]["cost"])),
        ("cheaper model", lambda b: b["cheaper_model"]),
        ("break-even Team seats", lambda b: b["breakeven_team_seats"]),
        ("prices read", lambda b: b["read"]),
    ]
    for label, cell in lines:
        table.add_row(label, *(safe_text(cell(book)) for book in books))
    return table
