"""The demo must work after a plain `pip install .`: the wheel carries the samples."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from simulator import __version__

ROOT = Path(__file__).parent.parent


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="needs setuptools")
def test_wheel_ships_sample_org_and_emails(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("intake_sim-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    emails = {n for n in names if n.startswith("simulator/samples/emails/")}
    assert "simulator/samples/org.toml" in names
    assert len([n for n in emails if n.endswith(".eml")]) >= 25
    assert len([n for n in emails if n.endswith(".expected.json")]) == len(
        [n for n in emails if n.endswith(".eml")]
    )
    assert "simulator/store/models.py" in names
    # The price books `--prices NAME` names, one file each.
    books = {p.name for p in (ROOT / "fixtures" / "prices").glob("*.toml")}
    assert len(books) >= 4
    assert {f"simulator/samples/prices/{name}" for name in books} <= names


def test_changelog_top_entry_is_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    top = re.search(r"^## (\S+) \((\d{4}-\d\d-\d\d)\)$", text, re.MULTILINE)
    assert top is not None and top.group(1) == __version__


def test_the_runtime_installs_only_what_the_demo_needs() -> None:
    """Browser, lint, build and chart tools, and PostgreSQL's driver, are extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {
        re.split(r"[<>=\[ ]", dependency)[0].lower() for dependency in project["dependencies"]
    }
    assert not runtime & {"playwright", "ruff", "pytest", "setuptools", "pyyaml", "matplotlib"}
    assert "psycopg" not in runtime
    test_extra = [
        re.split(r"[<>=\[ ]", d)[0].lower() for d in project["optional-dependencies"]["test"]
    ]
    assert len(test_extra) == len(set(test_extra)), "a test dependency is listed twice"
    assert {"license", "authors", "urls"} <= project.keys()
