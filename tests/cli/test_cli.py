"""The command line: JSON contract, errors as one line, and a real `serve` process."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from simulator.cli import app
from simulator.cli.app import COMMAND_ORDER
from simulator.reliability.listener import listening_address
from tests.support.databases import BACKENDS, fresh_database

runner = CliRunner()
ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "fixtures" / "emails"
DOCS = ROOT / "docs"
CLI_DOC = DOCS / "cli.md"
CLI_PACKAGE = ROOT / "simulator" / "cli"
DATE_PARSERS = {"fromisoformat", "strptime"}
README_MAX_BYTES = 12 * 1024  # the README is the PyPI description; the rest is in docs/

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
        "sender_source",
        "peer",
        "sender_trust",
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


def test_messages_say_where_the_sender_came_from(demo_db: str) -> None:
    rows = json.loads(invoke("messages", "--db", demo_db, "--format", "json"))
    by_sender = {row["sender"]: row["sender_source"] for row in rows}
    assert by_sender["carol@customer.example"] == "from"
    assert by_sender["wei.zhang@customer.example"] == "reply-to"  # From had no address
    assert by_sender["prizes@bulk.example"] == "envelope"  # From was not an address
    assert {row["sender_source"] for row in rows if row["sender"] is None} == {""}


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


def test_a_library_error_gets_the_flag_name_from_the_cli(tmp_path: Path) -> None:
    """The library says what is wrong with as_of; the CLI adds which flag carried it."""
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert runner.invoke(app, ["db", "upgrade", "--db", db]).exit_code == 0
    result = runner.invoke(app, ["report", "--db", db, "--as-of", "yesterday"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: --as-of: as_of 'yesterday' is not an ISO-8601 time such as 2026-11-28T12:00Z"
    ]


def _cli_sections() -> dict[str, str]:
    """docs/cli.md cut at its `## intake-sim NAME` headings: NAME -> that section's text."""
    text = CLI_DOC.read_text(encoding="utf-8")
    sections = {}
    for part in re.split(r"^(?=## )", text, flags=re.MULTILINE):
        heading = re.match(r"## intake-sim (.+)\n", part)
        if heading:
            sections[heading.group(1).strip()] = part
    return sections


def _click_commands() -> list[tuple[str, Any]]:
    """Every command behind the Typer app, as (`serve` or `db upgrade`, click command)."""
    found: list[tuple[str, Any]] = []

    def walk(group: Any, prefix: str) -> None:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):  # a group such as `db`
                walk(command, f"{prefix}{name} ")
            else:
                found.append((f"{prefix}{name}", command))

    walk(typer.main.get_command(app), "")
    return found


def _long_options(command: Any) -> list[str]:
    return [
        opt
        for param in command.params
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    ]


def _mentions(text: str, word: str) -> bool:
    """`word` in `text`, not as the start of a longer flag or name (`--db` in `--db-x`)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def test_every_command_has_help_and_is_in_the_cli_reference() -> None:
    sections = _cli_sections()
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0
        assert command.help or command.callback.__doc__, name
        assert name in sections, f"docs/cli.md has no section `## intake-sim {name}`"


def test_help_lists_every_command_in_its_place() -> None:
    """`--help` follows COMMAND_ORDER, whichever module a command lives in; a new
    command gets its place there."""
    group = typer.main.get_command(app)
    assert group.list_commands(typer.Context(group)) == list(COMMAND_ORDER)


def _thick_cli_lines(path: Path) -> list[str]:
    """Where a CLI module imports SQLAlchemy or parses a date itself, as `file:line what`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names]
            modules = names if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where} imports {m}" for m in modules if m.split(".")[0] == "sqlalchemy"]
            found += [f"{where} imports {n}" for n in names if n in DATE_PARSERS]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in DATE_PARSERS
        ):
            found.append(f"{where} calls {node.func.attr}")
    return found


def test_the_cli_holds_no_sql_and_no_date_parsing() -> None:
    """The CLI only parses options, calls the library and renders: queries live in
    reports/ and store/, reading a time from text in the library (parse_as_of)."""
    modules = sorted(CLI_PACKAGE.glob("*.py"))
    assert len(modules) >= 9
    thick = [line for path in modules for line in _thick_cli_lines(path)]
    assert thick == []


def test_every_command_group_and_its_commands_are_in_the_cli_reference() -> None:
    """Sub-apps (`intake-sim db ...`) are groups, not commands: check them and theirs."""
    reference = CLI_DOC.read_text(encoding="utf-8")
    sections = _cli_sections()
    assert app.registered_groups
    for group in app.registered_groups:
        assert group.name and group.typer_instance.info.help, group
        assert f"intake-sim {group.name}" in reference, (
            f"docs/cli.md lacks `intake-sim {group.name}`"
        )
        for command in group.typer_instance.registered_commands:
            name = command.name or command.callback.__name__
            result = runner.invoke(app, [group.name, name, "--help"])
            assert result.exit_code == 0, result.output
            assert command.help or command.callback.__doc__, name
            usage = f"{group.name} {name}"
            assert usage in sections, f"docs/cli.md has no section `## intake-sim {usage}`"


def test_every_option_is_in_its_commands_section_of_the_cli_reference() -> None:
    sections = _cli_sections()
    missing, unknown = [], []
    for name, command in _click_commands():
        section = sections.get(name, "")
        options = _long_options(command)
        missing += [f"{name} {opt}" for opt in options if not _mentions(section, opt)]
        # Each bullet of a section starts with one of that command's own options.
        listed = re.findall(r"^- `(--[\w-]+)", section, flags=re.MULTILINE)
        unknown += [f"{name} {opt}" for opt in listed if opt not in options]
    assert not missing, f"options missing from their section of docs/cli.md: {missing}"
    assert not unknown, f"docs/cli.md lists options the command does not have: {unknown}"


def test_readme_is_short_names_every_command_and_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    size = len(readme.encode("utf-8"))
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, more than {README_MAX_BYTES}"
    for name, _ in _click_commands():
        assert _mentions(readme, f"intake-sim {name}"), (
            f"README does not mention `intake-sim {name}`"
        )
    linked = {target.split("#")[0] for _, target in _links(readme)}
    pages = sorted(DOCS.glob("*.md"))
    assert pages
    for page in pages:
        assert f"docs/{page.name}" in linked, f"README does not link docs/{page.name}"


def _strip_code(text: str) -> str:
    """The text without fenced code blocks and inline code, where links and headings are not."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def _links(text: str) -> list[tuple[str, str]]:
    """(text, target) of every inline link and image outside code."""
    return re.findall(r"!?\[([^\]]*)\]\(([^)\s]+)\)", _strip_code(text))


def _anchors(markdown: str) -> set[str]:
    """The ids GitHub gives a page's headings: lower case, punctuation dropped, spaces to -."""
    seen: dict[str, int] = {}
    anchors = set()
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    for heading in re.findall(r"^#{1,6} +(.+?) *$", prose, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_every_relative_link_in_the_documentation_resolves() -> None:
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        for _, target in _links(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not file.is_file():
                broken.append(f"{where} (no such file)")
            elif (
                anchor
                and file.suffix == ".md"
                and anchor not in _anchors(file.read_text(encoding="utf-8"))
            ):
                broken.append(f"{where} (no such heading)")
    assert not broken, broken


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
            found = listening_address(line)
            port = found[1] if found else None
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
    assert [r["sender_source"] for r in rows] == ["from", ""]
