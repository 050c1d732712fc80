"""The command line: JSON contract, errors as one line, and a real `serve` process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli.app import app
from tests.conftest import BACKENDS, fresh_database

runner = CliRunner()
ROOT = Path(__file__).parent.parent
FIXTURES = ROOT / "fixtures" / "emails"

CONTRACT = {
    "messages": {
        "id",
        "received_at",
        "message_id",
        "sender",
        "subject",
        "outcome",
        "reason",
        "issue",
    },
    "issues": {"number", "subject", "submitter", "messages", "created_at"},
    "users": {
        "email",
        "name",
        "role",
        "origin",
        "support_seat",
        "team_seat",
        "first_seen",
        "messages",
    },
    "ledger": {"seq", "at", "model", "user", "delta", "reason", "delivery"},
}
REPORT_KEYS = {
    "as_of",
    "deliveries",
    "users",
    "support",
    "team",
    "breakeven_team_seats",
    "cheaper_model",
    "recommended_model",
    "reasons",
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module", params=BACKENDS)
def demo_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_database(request.param, tmp_path_factory.mktemp("demo")) as url:
        invoke("demo", "--db", url, "--format", "json")
        yield url


@pytest.mark.parametrize("command", sorted(CONTRACT))
def test_listing_json_contract(command: str, demo_db: str) -> None:
    rows = json.loads(invoke(command, "--db", demo_db, "--format", "json"))
    assert rows, command
    for row in rows:
        assert CONTRACT[command] <= set(row), row
        for key in ("received_at", "created_at", "at"):
            if key in row:
                assert ISO_UTC.match(row[key]), row[key]


def test_report_json_contract(demo_db: str) -> None:
    report = json.loads(invoke("report", "--db", demo_db, "--format", "json"))
    assert set(report) >= REPORT_KEYS
    assert set(report["deliveries"]) >= {
        "accepted",
        "created_issue",
        "threaded",
        "duplicate",
        "filtered",
        "quarantined",
    }
    assert set(report["users"]) == {"agent", "employee", "customer"}
    assert set(report["support"]) >= {"seats", "unit_price", "cost"}
    assert set(report["team"]) >= {"seats", "unit_price", "cost", "noise_senders_filtered"}
    assert report["deliveries"]["accepted"] == len(list(FIXTURES.glob("*.eml")))
    assert report["support"]["seats"] == 3  # ava, ben, cyd
    assert report["recommended_model"] == "support"
    assert report["cheaper_model"] in {"support", "team", "equal"}
    assert report["reasons"] and all(isinstance(r, str) for r in report["reasons"])


def test_csv_has_a_header_row(demo_db: str) -> None:
    text = invoke("users", "--db", demo_db, "--format", "csv")
    header = text.splitlines()[0].split(",")
    assert set(CONTRACT["users"]) <= set(header)


def test_report_as_of_before_any_mail(demo_db: str) -> None:
    report = json.loads(
        invoke("report", "--db", demo_db, "--format", "json", "--as-of", "2000-01-01T00:00Z")
    )
    assert report["support"]["seats"] == 0
    assert report["deliveries"]["accepted"] == 0


def test_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[organization\n")
    result = runner.invoke(app, ["report", "--org", str(bad), "--db", "sqlite:///x.db"])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    missing = runner.invoke(app, ["users", "--db", f"sqlite:///{tmp_path / 'none.db'}"])
    assert missing.exit_code == 1
    assert "no database at" in missing.stderr


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0
        assert command.help or command.callback.__doc__, name
        assert f"intake-sim {name}" in readme, f"README does not mention `intake-sim {name}`"


def test_every_command_group_and_its_commands_are_in_the_readme() -> None:
    """Sub-apps (`intake-sim db ...`) are groups, not commands: check them and theirs."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert app.registered_groups
    for group in app.registered_groups:
        assert group.name and group.typer_instance.info.help, group
        assert f"intake-sim {group.name}" in readme, f"README lacks `intake-sim {group.name}`"
        for command in group.typer_instance.registered_commands:
            name = command.name or command.callback.__name__
            result = runner.invoke(app, [group.name, name, "--help"])
            assert result.exit_code == 0, result.output
            assert command.help or command.callback.__doc__, name
            usage = f"intake-sim {group.name} {name}"
            assert usage in readme, f"README does not mention `{usage}`"


def test_serve_process_end_to_end(tmp_path: Path) -> None:
    """A real `serve` process on port 0; `send` delivers the fixtures; SIGTERM stops it cleanly."""
    db = f"sqlite:///{tmp_path / 'served.db'}"
    env = {**os.environ, "INTAKE_SIM_DB": db}
    server = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        port = None
        deadline = time.monotonic() + 20
        while port is None and time.monotonic() < deadline:
            line = server.stderr.readline()
            found = re.search(r"listening on smtp://127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        assert port, "serve did not report its port"
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "simulator",
                "send",
                "--port",
                str(port),
                "--format",
                "json",
                str(FIXTURES / "01-new-plain-text.eml"),
                str(FIXTURES / "40-no-headers.eml"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        replies = json.loads(sent.stdout)
        assert [r["code"] for r in replies] == [250, 250]
    finally:
        server.send_signal(signal.SIGTERM)
        _, rest = server.communicate(timeout=20)
    assert server.returncode == 0, rest
    assert "outcome=created_issue issue=#1 sender=carol@customer.example role=customer" in rest
    assert "outcome=quarantined/no_headers" in rest
    rows = json.loads(invoke("messages", "--db", db, "--format", "json"))
    assert [r["outcome"] for r in rows] == ["created_issue", "quarantined"]
