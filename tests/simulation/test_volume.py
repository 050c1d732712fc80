"""`sweep`, `report --by month` and scenario files, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli.app import app
from simulator.errors import ConfigError
from simulator.simulation.scenario import load_scenario
from simulator.simulation.sweep import crossover, parse_volumes

runner = CliRunner()
SCENARIOS = Path(__file__).parents[2] / "fixtures" / "scenarios"
PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_sweep_json_contract_and_plot(tmp_path: Path) -> None:
    chart = tmp_path / "volume.png"
    rows = json.loads(invoke("sweep", "--volumes", "3,30,300", "-f", "json", "--plot", str(chart)))
    assert [r["volume"] for r in rows] == [3, 30, 300]
    for row in rows:
        assert {"volume", "support", "team", "cheaper_model", "margin"} <= set(row)
        assert set(row["support"]) >= {"seats", "cost"} and set(row["team"]) >= {"seats", "cost"}
        assert row["margin"] == round(abs(row["support"]["cost"] - row["team"]["cost"]), 2)
    assert {r["support"]["seats"] for r in rows} == {3}  # flat in volume
    assert rows[0]["team"]["seats"] < rows[-1]["team"]["seats"]
    assert chart.read_bytes().startswith(PNG)
    csv = invoke("sweep", "--volumes", "10,100", "-f", "csv").splitlines()
    assert csv[0] == "volume,support_seats,support_cost,team_seats,team_cost,cheaper_model,margin"
    assert len(csv) == 3


def test_crossover_interpolates_on_a_log_scale() -> None:
    def row(volume: int, support: float, team: float) -> dict:
        return {"volume": volume, "support": {"cost": support}, "team": {"cost": team}}

    # Team's gap goes from -50 at 10 to +50 at 1000: halfway on the log scale is 100.
    assert crossover([row(10, 100, 50), row(1000, 100, 150)]) == 100.0
    assert crossover([row(10, 100, 150), row(1000, 100, 250)]) is None


def test_volume_list_errors() -> None:
    assert parse_volumes("1e3, 100,100") == [100, 1000]
    for bad in ("0", "1.5", "ten", "100000000"):
        with pytest.raises(ConfigError):
            parse_volumes(bad)


@pytest.mark.parametrize("name", ["b2b-desk", "consumer-desk", "internal-it"])
def test_scenarios_load_and_run(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    assert scenario.traffic.emails > 0
    report = json.loads(
        invoke(
            "simulate",
            "--scenario",
            str(SCENARIOS / f"{name}.toml"),
            "--emails",
            "60",
            "-f",
            "json",
        )
    )
    assert report["organization"] == scenario.org.name
    assert report["deliveries"]["accepted"] == 60
    if name == "internal-it":
        assert report["users"]["customer"] == 0
        assert report["recommended_model"] == "team"


def test_scenario_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[traffic]\nemails = 10\nwords = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown \\[traffic\\] key"):
        load_scenario(path)
    path.write_text("[traffic]\nreply_share = 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        load_scenario(path)
    result = runner.invoke(app, ["simulate", "--scenario", str(path)])
    assert result.exit_code == 1 and result.stderr.startswith("Error: ")


def test_report_by_month(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'months.db'}"
    invoke("simulate", "--emails", "240", "--days", "59", "--db", db, "-f", "json")
    rows = json.loads(invoke("report", "--db", db, "--by", "month", "-f", "json"))
    assert [r["month"] for r in rows] == ["2026-01", "2026-02"]
    users = json.loads(invoke("users", "--db", db, "-f", "json"))
    assert sum(r["new_users"] for r in rows) == len(users)
    assert [r["support"]["seats"] for r in rows] == [3, 3]
    final = json.loads(invoke("report", "--db", db, "--as-of", "2026-03-01T00:00Z", "-f", "json"))
    assert rows[-1]["team"]["seats"] == final["team"]["seats"]
    assert rows[0]["team"]["seats"] <= rows[1]["team"]["seats"]
    for row in rows:
        assert row["team"]["billed_seats"] == row["team"]["peak_seats"]  # monthly true-up
        assert row["team"]["cost"] == row["team"]["billed_seats"] * 10.0
        assert 0 < row["active_senders"] <= row["team"]["peak_seats"]
    chart = tmp_path / "months.png"
    invoke("report", "--db", db, "--by", "month", "--plot", str(chart))
    assert chart.read_bytes().startswith(PNG)


def test_licensing_rules_change_the_report_not_the_ledger(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rules.db'}"
    invoke("simulate", "--emails", "120", "--db", db, "-f", "json")
    org = tmp_path / "org.toml"
    sample = (SCENARIOS.parent / "org.toml").read_text(encoding="utf-8")
    org.write_text(sample + '\n[licensing]\nteam_counts_from = "creation"\n', encoding="utf-8")
    ledger_before = invoke("ledger", "--db", db, "-f", "json")
    as_of = ["--as-of", "2026-03-01T00:00Z", "-f", "json"]
    plain = json.loads(invoke("report", "--db", db, *as_of))
    creation = json.loads(invoke("report", "--db", db, "--org", str(org), *as_of))
    users = json.loads(invoke("users", "--db", db, "-f", "json"))
    # Counting from creation bills every account, the directory employee who
    # neither logs in nor wrote included.
    assert creation["team"]["seats"] == len(users)
    assert plain["team"]["seats"] == sum(u["team_seat"] for u in users) < len(users)
    assert invoke("ledger", "--db", db, "-f", "json") == ledger_before
