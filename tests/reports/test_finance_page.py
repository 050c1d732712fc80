"""`report --html`: the one-page finance report, opened in headless Chromium.

Every figure on the page carries the JSON path of its value; each is checked
against the JSON the CLI prints for it (`report`, `report --by month`, and
`forecast --sensitivity` on the scenario `fit` writes), so the page cannot
drift from the CLI. The page prints to at most three A4 pages, and holds no
script and no outside asset.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from simulator.cli import app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
ORG = Path(__file__).parents[2] / "fixtures" / "org.toml"
MAX_PAGES = 3

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium package", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

runner = CliRunner()


def _json(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four months of mail in a database, the page, and the CLI's JSON for it."""
    folder = tmp_path_factory.mktemp("finance")
    url = f"sqlite:///{folder / 'desk.db'}"
    simulated = runner.invoke(
        app,
        [
            "simulate",
            "--via",
            "direct",
            "--db",
            url,
            "--org",
            str(ORG),
            "--emails",
            "800",
            "--days",
            "120",
            "--customers",
            "150",
            "--seed",
            "3",
        ],
    )
    assert simulated.exit_code == 0, simulated.output
    page = folder / "finance.html"
    options = ["--months", "12", "--growth", "20%"]
    # The term starts the month after the data (four months from 2026-01-01).
    result = runner.invoke(
        app, ["report", "--db", url, "--org", str(ORG), "--html", str(page), *options]
    )
    assert result.exit_code == 0, result.output
    text = page.read_text()
    as_of = re.search(r"report --as-of (\S+)", text).group(1)
    start = re.search(r"months from\s+(\d{4}-\d\d-\d\d)", text).group(1)
    fitted = folder / "fitted.toml"
    done = runner.invoke(app, ["fit", "--db", url, "--org", str(ORG), "-o", str(fitted)])
    assert done.exit_code == 0, done.output
    return {
        "start": start,
        "page": page,
        "folder": folder,
        "json": {
            "report": _json("report", "--db", url, "--org", str(ORG), "--as-of", as_of),
            "months": _json(
                "report", "--db", url, "--org", str(ORG), "--as-of", as_of, "--by", "month"
            ),
            "forecast": _json(
                "forecast",
                "--scenario",
                str(fitted),
                "--org",
                str(ORG),
                "--sensitivity",
                "--start",
                start,
                *options,
            ),
        },
    }


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _at(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def _number(text: str) -> float:
    return float(text.replace(",", "").strip())


def test_every_figure_matches_the_cli_json(made: dict[str, Any], browser: Any) -> None:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(made["page"].as_uri())
    figures = page.eval_on_selector_all(
        "[data-key]", "nodes => nodes.map(n => [n.dataset.key, n.textContent])"
    )
    assert made["start"] == "2026-05-01"  # the month after the four months of mail
    assert len(figures) > 60  # the page is made of figures, and each is checked
    keys = {key for key, _ in figures}
    for wanted in (
        "report.support.cost",
        "report.team.cost",
        "forecast.forecasts.0.term.team",
        "forecast.sensitivity.breakeven_price_ratio",
        "months.0.team.cost",
    ):
        assert wanted in keys
    for key, text in figures:
        value = _at(made["json"], key)
        if isinstance(value, str):
            assert text.strip().lower() == value.lower(), key
        elif key.endswith("ratio"):
            assert _number(text) == pytest.approx(value, rel=1e-3), key
        else:
            assert _number(text) == pytest.approx(
                abs(value) if "base." in key else value, abs=0.006
            ), key
    # Every chart point and month links to the rows behind it, inside the page.
    anchors = page.eval_on_selector_all(
        "a[href^='#']", "nodes => nodes.map(n => n.getAttribute('href'))"
    )
    ids = set(page.eval_on_selector_all("[id]", "nodes => nodes.map(n => '#' + n.id)"))
    assert anchors and set(anchors) <= ids
    assert any(a.startswith("#ledger-") for a in anchors)
    assert any(a.startswith("#forecast-") for a in anchors)
    assert any(a.startswith("#sensitivity-") for a in anchors)
    # Self-contained: the file itself is the only request, and there is no script.
    assert requests == [made["page"].as_uri()]
    assert page.eval_on_selector_all("script", "nodes => nodes.length") == 0
    page.close()


def test_it_prints_to_at_most_three_a4_pages(made: dict[str, Any]) -> None:
    pdf = made["folder"] / "finance.pdf"
    subprocess.run(
        [
            str(CHROMIUM),
            *CHROMIUM_ARGS,
            f"--print-to-pdf={pdf}",
            "--no-pdf-header-footer",
            made["page"].as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
        pages = int(re.search(r"^Pages:\s+(\d+)", info.stdout, re.MULTILINE).group(1))
    else:
        pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    assert 1 <= pages <= MAX_PAGES
    # A4: 595 x 842 points, as each page's box says.
    assert re.search(rb"/MediaBox\s*\[\s*0 0 59[45]\.?\d* 84[12]\.?\d*", data)
