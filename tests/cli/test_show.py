"""`intake-sim show`: an issue's conversation and one message in full, quarantined
mail included, and its raw bytes exactly as received."""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

import httpx
from typer.testing import CliRunner

from simulator.cli import app
from simulator.org import sample_org_path
from tests.support.mail import compose
from tests.support.processes import intake_sim, smtp_port_in, web_port_in

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


IDENTITY = """
[identity]
verify_roles = ["agent"]
trusted_relays = ["127.0.0.1"]
"""


def test_show_message_tells_the_peer_and_the_trust_of_an_smtp_delivery(tmp_path: Path) -> None:
    org = tmp_path / "org.toml"
    org.write_text(sample_org_path().read_text(encoding="utf-8") + IDENTITY, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'smtp.db'}"
    args = ["serve", "--port", "0", "--web-port", "0", "--org", str(org)]
    with intake_sim(args, {"smtp": smtp_port_in, "web": web_port_in}, db) as run:
        with smtplib.SMTP("127.0.0.1", run.ports["smtp"], timeout=30) as client:
            raw = compose("Ava <ava@acme.example>", "relayed", to="support@acme.example")
            client.sendmail("ava@acme.example", ["support@acme.example"], raw)
        # The web page of the issue shows the same two facts, beside the channel.
        page = httpx.get(f"http://127.0.0.1:{run.ports['web']}/issues/1").text
    assert 'from <span class="peer">127.0.0.1</span>' in page
    assert 'sender <span class="trust">relay</span>' in page
    found = json.loads(
        runner.invoke(app, ["show", "message", "1", "--db", db, "-f", "json"]).stdout
    )
    assert (found["peer"], found["sender_trust"]) == ("127.0.0.1", "relay")
    shown = runner.invoke(app, ["show", "message", "1", "--db", db])
    assert shown.exit_code == 0, shown.output
    facts = {
        line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines() if line.strip()
    }
    assert facts["peer"] == ["127.0.0.1"] and facts["sender_trust"] == ["relay"]
