"""docker-compose.yml and Dockerfile, checked without a Docker engine.

The YAML is parsed and its shape asserted (services, ports, volume,
healthchecks, start order), and every intake-sim command line in it is
parsed by the real command line, so a misspelt flag fails here.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import smtplib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
import typer
import yaml
from sqlalchemy.engine import make_url
from typer.exceptions import TyperException

from simulator.cli.app import app
from simulator.reports.rows import messages, read_from
from tests.support.mail import compose
from tests.support.processes import smtp_port_in, web_port_in

ROOT = Path(__file__).parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
NOBODY = pwd.getpwnam("nobody")


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
    assert "EXPOSE 2525 8080" in lines
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


# --- the web port, the org file, the relay, the data volume ---------------------------

MAILPIT = yaml.safe_load((ROOT / "docker-compose.mailpit.yml").read_text(encoding="utf-8"))


def serve_step() -> typer.Context:
    return parse_cli(listener_steps()[-1])


def test_listener_publishes_the_web_port_on_loopback() -> None:
    serve = serve_step()
    assert serve.params["web_host"] == "0.0.0.0"  # inside the container; published below
    published = {entry.rsplit(":", 1)[1]: entry for entry in SERVICES["listener"]["ports"]}
    web = published[str(serve.params["web_port"])]
    assert web.startswith("127.0.0.1:"), "published on loopback only"


def test_listener_mounts_an_org_file_that_every_command_reads() -> None:
    from simulator.org import load_org

    listener = SERVICES["listener"]
    mounts = [volume.split(":") for volume in listener["volumes"]]
    org_target = listener["environment"]["INTAKE_SIM_ORG"]
    [(source, _, mode)] = [m for m in mounts if len(m) == 3 and m[1] == org_target]
    assert mode == "ro"
    org = load_org(ROOT / source)  # the file the stack mounts is a valid org file
    assert org.intake_addresses
    volumes = [m for m in mounts if m[0] in COMPOSE["volumes"]]
    assert [target for _, target in volumes] == ["/data"], "the image's data volume is named"


def test_mailpit_override_makes_mailpit_the_listeners_relay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listener = MAILPIT["services"]["listener"]
    relay = listener["environment"]["INTAKE_SIM_RELAY"]
    host, port = relay.rsplit(":", 1)
    assert host in MAILPIT["services"], "the relay is the Mailpit service by its name"
    smtp_ports = [entry.rsplit(":", 1)[1] for entry in MAILPIT["services"][host]["ports"]]
    assert port in smtp_ports
    assert listener["depends_on"] == {host: {"condition": "service_healthy"}}
    # Compose merges the override's environment into the listener's; serve reads it.
    monkeypatch.setenv("INTAKE_SIM_RELAY", relay)
    assert serve_step().params["relay"] == relay


# --- the image, read as Docker would ---------------------------------------------------


def dockerfile() -> dict[str, Any]:
    """The final stage's WORKDIR, ENV, USER, VOLUME and CMD, and its RUN commands."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    image: dict[str, Any] = {"env": {}, "run": [], "volumes": []}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "WORKDIR":
            image["workdir"] = rest.strip()
        elif word == "ENV":
            name, _, value = rest.strip().partition("=")
            image["env"][name] = value
        elif word == "USER":
            image["user"] = rest.strip()
        elif word == "VOLUME":
            image["volumes"].append(rest.strip())
        elif word == "CMD":
            image["cmd"] = json.loads(rest)
        elif word == "RUN":
            image["run"].append(rest)
    return image


def test_image_runs_as_intake_with_a_writable_data_volume() -> None:
    image = dockerfile()
    assert image["user"] == "intake"
    assert image["volumes"] == ["/data"] and image["workdir"] == "/data"
    run = " ".join(image["run"])
    assert "mkdir /data" in run and "chown intake:intake /data" in run
    url = make_url(image["env"]["INTAKE_SIM_DB"])
    assert url.drivername == "sqlite" and Path(url.database or "").parent == Path("/data")
    serve = parse_cli(image["cmd"])
    assert serve.command.name == "serve" and serve.params["web_port"] == 8080
    assert "8080" in (ROOT / "Dockerfile").read_text().split("EXPOSE", 1)[1].splitlines()[0]


def can_become_nobody() -> str | None:
    if os.geteuid() != 0:
        return "needs root, to run the command as an unprivileged user as the image does"
    if shutil.which("setpriv") is None:
        return "needs setpriv (util-linux)"
    return None


@pytest.mark.skipif(can_become_nobody() is not None, reason=str(can_become_nobody()))
@pytest.mark.timeout(90)
def test_the_images_command_as_its_user_stores_mail_in_the_volume() -> None:
    """The image's CMD, ENV and WORKDIR run outside Docker: `/app` a root-owned
    directory the user cannot write, `/data` one it owns, the user unprivileged
    (nobody standing in for intake). Mail gets 250 and the database is in the volume.
    Only the ports change (0, so the test finds free ones) and the paths are mapped."""
    # Not pytest's tmp_path: its parents are root's alone, and the user must reach the
    # two directories as it reaches / in the image.
    with tempfile.TemporaryDirectory(prefix="intake-sim-image-") as root:
        Path(root).chmod(0o755)
        run_the_image(Path(root))


def run_the_image(tmp_path: Path) -> None:
    image = dockerfile()
    app_dir, data_dir = tmp_path / "app", tmp_path / "data"
    app_dir.mkdir()
    app_dir.chmod(0o755)  # root's, as /app is: the user can read it, not write to it
    data_dir.mkdir()
    os.chown(data_dir, NOBODY.pw_uid, NOBODY.pw_gid)

    def mapped(text: str) -> str:
        return text.replace("/data", str(data_dir)).replace("/app", str(app_dir))

    env = {name: mapped(value) for name, value in image["env"].items()}
    env |= {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/nonexistent"}
    argv = [str(Path(sys.executable).parent / image["cmd"][0]), *image["cmd"][1:]]
    argv = ["0" if arg in ("2525", "8080") else arg for arg in argv]
    become = ["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups"]
    process = subprocess.Popen(
        [*become, *argv],
        cwd=mapped(image["workdir"]),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ports = read_ports(process)
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=20) as client:
            refused = client.sendmail(
                "carol@customer.example",
                ["support@acme.example"],
                compose("carol@customer.example", to="support@acme.example"),
            )
            assert refused == {}
            code, reply = client.noop()
        assert code == 250, reply
        version = json.loads(urlopen(f"http://127.0.0.1:{ports['web']}/api/version").read())
        assert version["deliveries"] == 1
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    database = data_dir / "intake.db"
    assert database.stat().st_uid == NOBODY.pw_uid, "written by the image's user"
    assert list(app_dir.iterdir()) == [], "nothing written outside the volume"
    assert read_from(f"sqlite:///{database}", lambda s: len(messages(s))) == 1


def read_ports(process: subprocess.Popen[str]) -> dict[str, int]:
    """The SMTP and web ports from the listener's log, as it starts."""
    ports: dict[str, int] = {}
    seen: list[str] = []
    assert process.stdout is not None
    while len(ports) < 2:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("the listener stopped before listening:\n" + "".join(seen))
        seen.append(line)
        for name, reader in (("smtp", smtp_port_in), ("web", web_port_in)):
            port = reader(line)
            if port:
                ports[name] = port
    return ports
