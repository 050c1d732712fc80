"""`intake-sim show`: an issue's conversation and one message in full, quarantined
mail included, and its raw bytes exactly as received."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from simulator.cli import app

FIXTURES = Path(__file__).parents[2] / "fixtures" / "emails"
runner = CliRunner()


def _filled(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'show.db'}"
    assert runner.invoke(app, ["ingest", str(FIXTURES), "--db", db]).exit_code == 0
    return db


def test_show_issue_and_message(tmp_path: Path) -> None:
    db = _filled(tmp_path)
    issue = json.loads(runner.invoke(app, ["show", "issue", "1", "--db", db, "-f", "json"]).stdout)
    assert issue["number"] == 1 and issue["messages"]
    first = issue["messages"][0]
    shown = runner.invoke(app, ["show", "issue", "1", "--db", db])
    assert shown.exit_code == 0
    assert f"Issue #1: {issue['subject']}" in shown.stdout
    assert first["text"].splitlines()[0] in shown.stdout
    listed = json.loads(runner.invoke(app, ["messages", "--db", db, "-f", "json"]).stdout)
    quarantined = next(m for m in listed if m["outcome"] == "quarantined")
    detail = runner.invoke(app, ["show", "message", str(quarantined["id"]), "--db", db])
    assert detail.exit_code == 0 and "quarantined" in detail.stdout
    raw = runner.invoke(app, ["show", "message", str(quarantined["id"]), "--db", db, "--raw"])
    eml = next(p for p in sorted(FIXTURES.glob("*.eml")) if p.read_bytes() == raw.stdout_bytes)
    assert eml.exists()


def test_show_what_is_not_there_is_one_error_line(tmp_path: Path) -> None:
    db = _filled(tmp_path)
    for args in (["show", "issue", "999"], ["show", "message", "999", "--raw"]):
        result = runner.invoke(app, [*args, "--db", db])
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines() == [f"Error: no {args[1]} 999"]
