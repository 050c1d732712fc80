"""`intake-sim show`: what a customer wrote. `show issue N` is an issue with its
conversation; `show message N` one delivery in full, `--raw` its bytes as received."""

from __future__ import annotations

import sys
from functools import partial
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from simulator.cli.app import HELP_OPTIONS, app
from simulator.cli.options import DbOption, FormatOption, cli_errors, existing_db, out, print_json
from simulator.cli.render import Format, render, safe_text, table_cell
from simulator.defaults import DEFAULT_DB_URL
from simulator.reports.columns import MESSAGE_COLUMNS
from simulator.reports.safe import defused

show_app = typer.Typer(
    help="What a customer wrote: an issue with its conversation, or one message in full.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)
app.add_typer(show_app, name="show")

# The facts of one message, in the order a reader wants them.
FACTS = ("id", "received_at", "sender", "sender_name", "recipients", "subject", "outcome")
MORE_FACTS = (
    "reason",
    "issue",
    "channel",
    "peer",
    "sender_trust",
    "size",
    "message_id",
    "sent_at",
)


@show_app.command("issue")
def show_issue(
    number: Annotated[int, typer.Argument(help="The issue number.")],
    db: DbOption = DEFAULT_DB_URL,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """An issue and every message filed under it: sender, time, outcome, text, attachments."""
    # Here, not at the top: `intake-sim --help` should not load SQLAlchemy.
    from simulator.reports import conversation, rows

    with cli_errors():
        found = rows.read_from(existing_db(db), partial(conversation.issue, number=number))
    if fmt is Format.JSON:
        print_json(found)
        return
    if fmt is Format.CSV:
        render(found["messages"], MESSAGE_COLUMNS, fmt, out)
        return
    out.print(
        Text(f"Issue #{found['number']}: {safe_text(found['subject'])}", style="bold"),
        Text(
            f"opened by {safe_text(found['submitter'])} at {table_cell('at', found['created_at'])}"
        ),
    )
    for message in found["messages"]:
        _print_message(message, headers=False)


@show_app.command("message")
def show_message(
    message_id: Annotated[int, typer.Argument(metavar="N", help="The message (delivery) id.")],
    db: DbOption = DEFAULT_DB_URL,
    fmt: FormatOption = Format.TABLE,
    raw: Annotated[
        bool, typer.Option("--raw", help="Write the message's bytes exactly as received (.eml).")
    ] = False,
) -> None:
    """One message in full: its facts, headers, attachments and text (quarantined mail too)."""
    from simulator.reports import conversation, rows

    with cli_errors():
        url = existing_db(db)
        if raw:
            data = rows.read_from(url, partial(conversation.message_raw, delivery_id=message_id))
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        found = rows.read_from(url, partial(conversation.message, delivery_id=message_id))
    if fmt is Format.JSON:
        print_json(found)
    elif fmt is Format.CSV:
        render([found], MESSAGE_COLUMNS, fmt, out)
    else:
        _print_message(found, headers=True)


def _facts(message: dict[str, Any], headers: bool) -> Table:
    facts = Table(show_header=False, box=None, title_justify="left")
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    for key in (*FACTS, *MORE_FACTS):
        if message.get(key) not in (None, ""):
            facts.add_row(key, table_cell(key, message[key]))
    for attachment in message["attachments"]:
        facts.add_row(
            "attachment",
            f"{safe_text(attachment.get('name'))} ({safe_text(attachment.get('content_type'))}, "
            f"{attachment.get('size', 0):,} bytes)",
        )
    if headers:
        for name, value in message["headers"]:
            facts.add_row(safe_text(name), safe_text(value))
    return facts


def _print_message(message: dict[str, Any], headers: bool) -> None:
    out.print()
    out.rule(f"message {message['id']}")
    out.print(_facts(message, headers))
    out.print()
    # Text as written, line breaks kept; a control character is shown as '?'.
    out.print(Text(defused(message["text"] or "(no text)")))
