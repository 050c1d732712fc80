"""Usage as docs/cli.md states it: usage errors as one line, --version and -h, the
environment-variable rule, a hint for a bare path, read-only commands that create
nothing, and a `--help` that starts without the heavy libraries."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from simulator import __version__
from simulator.cli import app, main
from simulator.cli.options import RENAMED_ENV

# Libraries `--help`, `version` and a command's `--help` must start without.
HEAVY = (
    "matplotlib",
    "starlette",
    "uvicorn",
    "psycopg",
    "alembic",
    "sqlalchemy",
    "aiosmtpd",
    "jinja2",
    "asyncio",
)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The console script's own entry point, in this process: status, stdout, stderr."""
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    captured = capsys.readouterr()
    return int(stop.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["users", "--bogus"], "No such option: --bogus"),
        (["users", "--format", "xml"], "'xml' is not one of"),
        (["messages", "--outcome", "bogus"], "'bogus' is not one of"),
        (["ledger", "--model", "seats"], "'seats' is not one of"),
        (["send"], "Missing argument"),
        (["no-such-command"], "No such command"),
        (["users", "--db"], "requires an argument"),
    ],
)
def test_usage_errors_are_one_error_line_with_status_1(
    capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    status, out, err = run(capsys, *args)
    assert status == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert said in lines[0]


def test_version_and_short_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"{__version__}\n", "")
    assert run(capsys, "version") == (0, f"{__version__}\n", "")
    status, out, _ = run(capsys, "-h")
    assert status == 0 and out.startswith("Usage: intake-sim")
    status, out, _ = run(capsys, "db", "current", "-h")
    assert status == 0 and "--db" in out
    status, out, _ = run(capsys)  # a bare intake-sim shows its help
    assert status == 0 and "Commands:" in out


def test_a_bare_path_for_db_gets_the_url_form(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "x.db"
    status, _, err = run(capsys, "db", "upgrade", "--db", str(path))
    assert status == 1
    assert err.strip() == (
        f"Error: not a database URL: '{path}'; an SQLite file is written sqlite:///{path}"
    )
    assert not path.exists()


def test_db_current_on_a_missing_file_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "sub" / "none.db"
    status, out, _ = run(capsys, "db", "current", "--db", f"sqlite:///{missing}", "-f", "json")
    assert status == 0
    assert json.loads(out)[0]["current"] is None
    assert not missing.parent.exists()


def _envvars() -> dict[tuple[str, str], list[str]]:
    """(command, --flag) -> the variables the option reads."""
    found: dict[tuple[str, str], list[str]] = {}
    root = typer.main.get_command(app)
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            variables = param.envvar or []
            long = next((o for o in param.opts if o.startswith("--")), None)
            if long and variables:
                found[(name, long)] = [variables] if isinstance(variables, str) else variables
    return found


def test_each_variable_means_one_thing() -> None:
    """A variable read by several commands is for a flag that means the same in all of them:
    the rule in docs/cli.md. The renamed ones are each command's own."""
    envvars = _envvars()
    assert envvars[("web", "--port")] == ["INTAKE_SIM_WEB_PORT"]
    assert envvars[("web", "--host")] == ["INTAKE_SIM_WEB_HOST"]
    assert envvars[("simulate", "--port")] == ["INTAKE_SIM_SIMULATE_PORT"]
    assert envvars[("report", "--plot")] == ["INTAKE_SIM_REPORT_PLOT"]
    assert envvars[("sweep", "--plot")] == ["INTAKE_SIM_SWEEP_PLOT", "INTAKE_SIM_PLOT"]
    assert envvars[("fuzz", "--seed")] == ["INTAKE_SIM_FUZZ_SEED"]
    assert envvars[("crash-test", "--seed")] == ["INTAKE_SIM_CRASH_TEST_SEED"]
    for command, renames in RENAMED_ENV.items():
        for old, new, still_read in renames:
            read = [v for (name, _), names in envvars.items() if name == command for v in names]
            assert new in read and (old in read) == still_read, (command, old)
    # Each variable's flag: one long flag, or the command-specific form of it.
    for (command, flag), names in envvars.items():
        for variable in names:
            bare = "INTAKE_SIM_" + flag.removeprefix("--").replace("-", "_").upper()
            own = bare.replace("INTAKE_SIM_", f"INTAKE_SIM_{command.upper().replace('-', '_')}_")
            renamed = any(variable == old for old, _, _ in RENAMED_ENV.get(command, []))
            assert variable in (bare, own) or renamed, (command, flag, variable)


def test_a_plot_variable_for_sweep_leaves_report_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert run(capsys, "db", "upgrade", "--db", db)[0] == 0
    monkeypatch.setenv("INTAKE_SIM_PLOT", str(tmp_path / "sweep.png"))
    status, out, err = run(capsys, "report", "--db", db, "-f", "json")
    assert status == 0, err
    assert "support" in json.loads(out)
    assert "`report` no longer reads INTAKE_SIM_PLOT" in err
    assert not (tmp_path / "sweep.png").exists()


def test_help_starts_without_the_heavy_libraries() -> None:
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['intake-sim', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('simulator', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    for args in (
        ["--help"],
        ["-h"],
        ["version"],
        ["--version"],
        ["serve", "--help"],
        ["report", "--help"],
        ["db", "current", "-h"],
    ):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            check=True,
        )
        assert done.stderr.strip() == "", f"`{args}` imported {done.stderr.strip()}"


def test_version_and_top_level_help_start_without_pydantic() -> None:
    """Typer checks a running command's parameters with pydantic; `version`, `--version`
    and the top-level help answer before that."""
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['intake-sim', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('simulator', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('pydantic' in sys.modules, file=sys.stderr)\n"
    )
    for args in (["version"], ["--version"], ["--help"], ["-h"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            check=True,
        )
        assert done.stderr.strip() == "False", f"`{args}` imported pydantic"
        wanted = __version__ if "version" in args[0] else "Usage: intake-sim"
        assert done.stdout.startswith(wanted), done.stdout


def test_drain_without_a_spool_leaves_none_behind(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "intake.db"
    status, out, err = run(capsys, "drain", "--db", f"sqlite:///{path}", "-f", "json")
    assert status == 0, err
    assert json.loads(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_gitignore_covers_the_spool_file() -> None:
    ignored = (Path(__file__).parents[2] / ".gitignore").read_text().splitlines()
    assert "*-spool" in ignored


def test_serve_on_a_taken_port_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The port is checked before the org's seat events are written, not after."""
    path = tmp_path / "intake.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, err = run(capsys, "serve", "--port", str(port), "--db", f"sqlite:///{path}")
    assert status == 1
    assert err.startswith(f"Error: cannot listen on 127.0.0.1:{port}:")
    assert not path.exists()


def test_serve_says_fault_injection_is_on_before_it_listens(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'chaos.db'}"
    chaos = ["--chaos", "data:451:0.5", "--chaos", "rcpt:550:0.1"]
    server = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--port", "0", "--db", db, *chaos],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("fault injection" in s for s in seen):
            line = server.stderr.readline() if server.stderr else ""
            if not line:
                break
            seen.append(line)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    [said] = [s for s in seen if "fault injection" in s]
    assert "WARNING" in said and "data:451:0.5, rcpt:550:0.1" in said
