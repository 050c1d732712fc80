"""`intake-sim fit`: seeded synthetic traffic goes through the real pipeline into a
SQLite file (`simulate --via direct`), and the fit must recover the parameters
it was made with, within the tolerances below; the scenario it writes must load."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.simulation.scenario import load_scenario

runner = CliRunner()

# The traffic the fit must recover: six months of a mid-sized desk.
TRUTH = {
    "emails": 5000,
    "days": 181,  # 2026-01-01 .. 2026-06-30
    "seed": 5,
    "customers": 300,
    "new-sender-share": 0.06,
    "internal-share": 0.1,
    "reply-share": 0.3,
    "cc-per-message": 0.4,
    "noise": "auto_reply=0.04,bounce=0.02,list=0.03,no_reply=0.02",
}
# Absolute tolerances for shares (about three binomial standard errors at 5,000
# messages), relative ones for the population. Fitted on counts, not on the plan.
SHARE_TOLERANCE = 0.02
SKEW_TOLERANCE = 0.12
POPULATION_TOLERANCE = 0.2


def _options(values: dict[str, object]) -> list[str]:
    return [part for key, value in values.items() for part in (f"--{key}", str(value))]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("fit")
    url = f"sqlite:///{folder / 'history.db'}"
    result = runner.invoke(
        app, ["simulate", "--via", "direct", "--db", url, "--format", "json", *_options(TRUTH)]
    )
    assert result.exit_code == 0, result.output
    return url


def test_fit_recovers_seeded_traffic(history: str, tmp_path: Path) -> None:
    target = tmp_path / "fitted.toml"
    result = runner.invoke(app, ["fit", "--db", history, "--output", str(target)])
    assert result.exit_code == 0, result.output
    traffic = load_scenario(target).traffic
    assert traffic.new_sender_share == pytest.approx(0.06, abs=SHARE_TOLERANCE)
    assert traffic.internal_share == pytest.approx(0.1, abs=SHARE_TOLERANCE)
    assert traffic.reply_share == pytest.approx(0.3, abs=SHARE_TOLERANCE)
    assert traffic.cc_per_message == pytest.approx(0.4, abs=0.05)
    for kind, share in {"auto_reply": 0.04, "bounce": 0.02, "list": 0.03, "no_reply": 0.02}.items():
        assert traffic.noise[kind] == pytest.approx(share, abs=SHARE_TOLERANCE), kind
    # The default skew of the traffic model (1.1): the command line does not set it.
    assert traffic.zipf_exponent == pytest.approx(1.1, abs=SKEW_TOLERANCE)
    assert traffic.customers == pytest.approx(300, rel=POPULATION_TOLERANCE)
    assert traffic.emails == pytest.approx(5000 / 181 * 30, rel=0.01)
    assert traffic.days == 30
    # Every value line carries the figure it came from, and [fit] the months.
    text = target.read_text()
    data = tomllib.loads(text)
    assert data["fit"]["months"] == [f"2026-0{m}" for m in range(1, 7)]
    assert abs(data["fit"]["volume_growth_per_year"]) < 0.25  # flat traffic: no real trend
    assert data["fit"]["zipf_deviance_per_class"] < 4  # the Zipf law fits this traffic
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "name", "months", "path")):
            assert "  # " in line, line


def test_fit_as_json_names_each_measurement(history: str) -> None:
    result = runner.invoke(app, ["fit", "--db", history, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_name = {row["parameter"]: row for row in data["parameters"]}
    assert {"customers", "zipf_exponent", "new_sender_share", "auto_reply"} <= set(by_name)
    assert all(row["measured"] for row in data["parameters"])
    assert data["months"][0]["month"] == "2026-01"


def test_fit_refuses_too_little_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'small.db'}"
    made = runner.invoke(app, ["simulate", "--via", "direct", "--db", url, "--emails", "40"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["fit", "--db", url])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: too little data to fit:"), result.output
    assert len([line for line in lines if line.startswith("Error:")]) == 1
