"""Automatic email from the command line: `demo --relay` against a real catcher,
`outbox` listings, the report's extra keys, and the Mailpit override file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer
import yaml
from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.reliability.listener import listening_address
from tests.support.catcher import CatcherHandler, catcher
from tests.support.listeners import smtp_transaction

ROOT = Path(__file__).parents[2]
runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


async def test_demo_sends_acknowledgements_through_any_local_catcher(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    relay = CatcherHandler()
    async with catcher(relay) as (host, port):
        demo = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "simulator", "demo", "--db", db, "--relay", f"{host}:{port}"),
            *("--format", "json"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(demo.communicate(), timeout=120)
    assert demo.returncode == 0, stderr.decode()
    result = json.loads(stdout)

    outbox = result["outbox"]
    created = [m for m in result["messages"] if m["outcome"] == "created_issue"]
    assert outbox and len(outbox) <= len(created)
    assert {r["status"] for r in outbox} == {"sent"}
    assert sorted(r["recipient"] for r in outbox) == sorted(c.rcpt_tos[0] for c in relay.caught)
    submitters = {i["number"]: i["submitter"] for i in result["issues"]}
    for row in outbox:
        assert row["kind"] == "acknowledgement"
        assert row["subject"].startswith(f"[Issue #{row['issue']}]")
        assert submitters[row["issue"]] == row["recipient"]
    # The sample org acknowledges; it sends no participant updates, so no seat comes of it.
    assert result["report"]["notifications"]["sent"] == len(outbox)
    assert result["report"]["team"]["seats_from_notifications"] == 0
    assert "receive automatic email updates" in result["report"]["reasons"][0]

    rows = json.loads(invoke("outbox", "--db", db, "--format", "json", "--status", "sent"))
    assert [r["id"] for r in rows] == [r["id"] for r in outbox]
    assert json.loads(invoke("outbox", "--db", db, "--format", "json", "--status", "failed")) == []
    header = invoke("outbox", "--db", db, "--format", "csv").splitlines()[0].split(",")
    assert {"id", "kind", "issue", "recipient", "status", "attempts", "last_error"} <= set(header)
    report = json.loads(invoke("report", "--db", db, "--format", "json"))
    assert {"seats_without_notifications", "cost_without_notifications"} <= set(report["team"])
    assert "Team without them" in invoke("report", "--db", db)


def test_a_bad_relay_is_one_error_line_before_anything_opens(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--relay", "x"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: --relay: a relay is HOST:PORT, such as 127.0.0.1:1025, not 'x'"
    )
    assert not (tmp_path / "x.db").exists()


def _relay_envvar() -> str:
    command: Any = typer.main.get_command(app)
    serve = command.commands["serve"]
    [option] = [p for p in serve.params if "--relay" in p.opts]
    assert isinstance(option.envvar, str)
    return option.envvar


def test_mailpit_override_file_is_sound() -> None:
    text = (ROOT / "docker-compose.mailpit.yml").read_text(encoding="utf-8")
    compose: dict[str, Any] = yaml.safe_load(text)
    mailpit = compose["services"]["mailpit"]
    name, _, tag = mailpit["image"].partition(":")
    assert name == "axllent/mailpit" and tag and tag != "latest"
    published = {p.rsplit(":", 1)[-1]: p for p in mailpit["ports"]}
    assert set(published) == {"1025", "8025"}
    assert all(p.startswith("127.0.0.1:") for p in published.values())  # loopback only
    assert mailpit["healthcheck"]["test"][0] == "CMD"
    # The listener is given the relay by the real option's environment variable.
    assert compose["services"]["listener"]["environment"] == {_relay_envvar(): "mailpit:1025"}
    assert f"{_relay_envvar()}, read by `serve`" in text


async def test_serve_with_a_relay_acknowledges_and_logs(tmp_path: Path) -> None:
    """A real `serve --relay` process; a real client; the catcher gets the acknowledgement."""
    relay = CatcherHandler()
    async with catcher(relay) as (host, port):
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "simulator", "serve", "--port", "0"),
            *("--db", f"sqlite:///{tmp_path / 'served.db'}"),
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "INTAKE_SIM_RELAY": f"{host}:{port}"},
        )
        assert server.stderr is not None
        try:
            listening = None
            while listening is None:
                line = (await asyncio.wait_for(server.stderr.readline(), 20)).decode()
                assert line, "serve ended before listening"
                listening = listening_address(line)
            raw = (ROOT / "fixtures" / "emails" / "01-new-plain-text.eml").read_bytes()
            code, _ = await asyncio.to_thread(
                smtp_transaction,
                "127.0.0.1",
                listening[1],
                raw,
                "carol@customer.example",
                "support@acme.example",
            )
            assert code == 250
            [ack] = await relay.wait_for(1, timeout=20)
        finally:
            server.send_signal(signal.SIGTERM)
            _, rest = await asyncio.wait_for(server.communicate(), 20)
    assert server.returncode == 0, rest.decode()
    assert ack.rcpt_tos == ("carol@customer.example",)
    assert ack.message["Subject"].startswith("[Issue #1] ")
    log = rest.decode()
    assert "queued=1" in log
    assert "outbox #1 to carol@customer.example: sent" in log
