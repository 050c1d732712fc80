"""The demo must work after a plain `pip install .`: the wheel carries the samples."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
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


def test_changelog_top_entry_is_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    top = re.search(r"^## (\S+) \((\d{4}-\d\d-\d\d)\)$", text, re.MULTILINE)
    assert top is not None and top.group(1) == __version__
