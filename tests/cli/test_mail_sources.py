"""`ingest` and `send` over every kind of mail source: the same dated mail as an .eml
folder, a Maildir++, mbox in three line-end styles and compressed mbox gives the
same deliveries; a source with no mail is one error line and exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from tests.support.mailboxes import dated_messages, write_all_sources

runner = CliRunner()


def invoke_json(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def deliveries(db: str) -> list[dict[str, Any]]:
    """What was stored, without the row ids that depend on the order of reading."""
    rows = invoke_json("messages", "--db", db)
    kept = [{k: v for k, v in row.items() if k not in {"id", "issue"}} for row in rows]
    return sorted(kept, key=lambda row: (row["received_at"], row["message_id"]))


def test_every_source_gives_the_same_deliveries(tmp_path: Path) -> None:
    sources = write_all_sources(tmp_path / "mail", dated_messages())
    seen: dict[str, list[dict[str, Any]]] = {}
    for index, (name, path) in enumerate(sources.items()):
        db = f"sqlite:///{tmp_path / f'{index}.db'}"
        counts = invoke_json("ingest", str(path), "--db", db, "--use-date-header")
        assert counts == [{"outcome": "created_issue", "deliveries": 6}], name
        seen[name] = deliveries(db)
    first = seen["eml folder"]
    assert [row["received_at"][:7] for row in first] == [f"2026-0{m}" for m in range(1, 7)]
    assert {row["sender"] for row in first} == {
        f"{who}@customer.example" for who in ("ann", "bo", "cy", "dee", "ed", "flo")
    }
    for name, rows in seen.items():
        assert rows == first, name


@pytest.mark.parametrize("command", ["ingest", "send"])
@pytest.mark.parametrize("kind", ["empty folder", "empty file", "not mail"])
def test_a_source_with_no_mail_is_one_error_line(tmp_path: Path, command: str, kind: str) -> None:
    source = tmp_path / "source"
    if kind == "empty folder":
        source.mkdir()
        (source / "notes.md").write_text("# not mail\n")
    else:
        source.write_text("" if kind == "empty file" else "# Load your own mailbox\n")
    extra = ["--db", f"sqlite:///{tmp_path / 'x.db'}"] if command == "ingest" else ["--port", "9"]
    result = runner.invoke(app, [command, str(source), *extra])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ") and lines[0].endswith(str(source))
