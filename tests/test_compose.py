"""docker-compose.yml and Dockerfile, checked without a Docker engine.

The YAML is parsed and its shape asserted (services, ports, volume,
healthchecks, start order), and every intake-sim command line in it is
parsed by the real command line, so a misspelt flag fails here.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from sqlalchemy.engine import make_url
from typer.exceptions import TyperException

from simulator.cli.app import app

ROOT = Path(__file__).parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]


def parse_cli(argv: list[str]) -> typer.Context:
    """Parse an `intake-sim ...` line as the installed program would, without running it.

    Walks the command groups to the command, then lets it parse (and type-check)
    its options: an unknown flag or a bad value raises.
    """
    assert argv[0] == "intake-sim", argv
    command: Any = typer.main.get_command(app)
    context = typer.Context(command, info_name="intake-sim")
    args = argv[1:]
    while hasattr(command, "commands"):  # a group: the next word names a command in it
        name, *args = args
        found = command.get_command(context, name)
        assert found is not None, f"intake-sim has no command {name!r}"
        if not hasattr(found, "commands"):
            return found.make_context(name, args, parent=context)
        command, context = found, typer.Context(found, info_name=name, parent=context)
    raise AssertionError(argv)


def listener_steps() -> list[list[str]]:
    """The listener's `sh -c` script, one argv per `&&` step, `exec` dropped."""
    shell, flag, script = SERVICES["listener"]["command"]
    assert (shell, flag) == ("sh", "-c")
    steps = [shlex.split(step) for step in script.split("&&")]
    return [step[1:] if step[0] == "exec" else step for step in steps]


def test_parser_refuses_a_misspelt_flag() -> None:
    with pytest.raises(TyperException, match="--prot"):
        parse_cli(["intake-sim", "serve", "--prot", "2525"])
    with pytest.raises(typer.BadParameter):
        parse_cli(["intake-sim", "serve", "--port", "70000"])
    with pytest.raises(AssertionError, match="no command 'upgrad'"):
        parse_cli(["intake-sim", "db", "upgrad"])


def test_postgres_service() -> None:
    db = SERVICES["db"]
    assert db["image"].startswith("postgres:")
    volume, _, target = db["volumes"][0].partition(":")
    assert volume in COMPOSE["volumes"], "the data directory is a named volume"
    assert target == "/var/lib/postgresql/data"
    check = db["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL" and "pg_isready" in check[1]
    env = db["environment"]
    assert f"-U {env['POSTGRES_USER']}" in check[1] and f"-d {env['POSTGRES_DB']}" in check[1]


def test_listener_waits_for_the_database_then_upgrades_and_serves() -> None:
    listener = SERVICES["listener"]
    assert listener["build"] == "."
    assert listener["depends_on"] == {"db": {"condition": "service_healthy"}}
    upgrade, serve = (parse_cli(step) for step in listener_steps())
    assert upgrade.command.name == "upgrade" and upgrade.parent is not None
    assert upgrade.parent.info_name == "db"
    assert serve.command.name == "serve"
    assert serve.params["host"] == "0.0.0.0"
    assert serve.params["port"] == 2525
    assert upgrade.params["db"] == serve.params["db"] == listener["environment"]["INTAKE_SIM_DB"]
    host_port, container_port = listener["ports"][0].rsplit(":", 2)[-2:]
    assert container_port == str(serve.params["port"]) and host_port.isdigit()


def test_database_url_names_the_postgres_service_and_its_credentials() -> None:
    url = make_url(SERVICES["listener"]["environment"]["INTAKE_SIM_DB"])
    env = SERVICES["db"]["environment"]
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "db" and url.port == 5432
    assert (url.username, url.password, url.database) == (
        env["POSTGRES_USER"],
        env["POSTGRES_PASSWORD"],
        env["POSTGRES_DB"],
    )


def test_listener_healthcheck_is_the_ready_command() -> None:
    check = SERVICES["listener"]["healthcheck"]["test"]
    assert check[0] == "CMD"
    ready = parse_cli(check[1:])
    assert ready.command.name == "ready"
    assert ready.params["port"] == 2525 and ready.params["host"] == "127.0.0.1"


def test_dockerfile_installs_the_package_and_exposes_the_port() -> None:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("FROM python:3.1") for line in lines)
    assert any("pip install" in line and '".[postgresql]"' in line for line in lines)
    assert "EXPOSE 2525" in lines
    copied = {source for line in lines if line.startswith("COPY") for source in line.split()[1:-1]}
    assert {"pyproject.toml", "setup.py", "simulator", "fixtures"} <= copied


def test_the_files_the_image_copies_build_a_complete_wheel(tmp_path: Path) -> None:
    """What the Dockerfile COPYs, and nothing else, is enough to build the package."""
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    context = tmp_path / "context"
    context.mkdir()
    for line in lines:
        if line.startswith("COPY"):
            *sources, _ = line.split()[1:]
            for source in sources:
                path = ROOT / source
                copy = shutil.copytree if path.is_dir() else shutil.copy
                copy(path, context / source)
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    command += ["--no-build-isolation", "--wheel-dir", str(wheels), str(context)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    (wheel,) = wheels.glob("intake_sim-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"simulator/samples/org.toml", "simulator/web/openapi.json"} <= names
    assert "simulator/store/migrations/env.py" in names
