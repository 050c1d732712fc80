"""A real browser against a real `serve --web-port` process.

Headless Chromium (Debian's `chromium` package), driven by Playwright for
Python. It submits the web form, watches the issue appear, sends mail over
SMTP and watches that appear without a reload, and checks that hostile
subjects are shown as text and run nothing. With INTAKE_SIM_SCREENSHOT=PATH
it also saves a screenshot of the dashboard there (`make screenshot`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli.app import app
from tests.support.listeners import smtp_transaction
from tests.support.mail import compose
from tests.support.processes import intake_sim, smtp_port_in, web_port_in

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FIXTURES = Path(__file__).parents[2] / "fixtures" / "emails"
FORM_SUBJECT = "<script>alert('form')</script>"
MAIL_SUBJECT = '<img src=x onerror="alert(1)"> printer on fire'
WAIT_MS = 15_000

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is absent: install Debian's chromium package to run the browser test",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_form_mail_and_live_updates_in_a_browser(tmp_path: Path, browser: sync_api.Browser) -> None:
    db = f"sqlite:///{tmp_path / 'browser.db'}"
    args = ["serve", "--port", "0", "--web-port", "0"]
    with intake_sim(args, {"smtp": smtp_port_in, "web": web_port_in}, db) as running:
        smtp_port, base = running.ports["smtp"], f"http://127.0.0.1:{running.ports['web']}"
        sent = CliRunner().invoke(app, ["send", "--port", str(smtp_port), str(FIXTURES)])
        assert sent.exit_code == 0, sent.output

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        dialogs: list[str] = []
        errors: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: errors.append(str(error)))
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))

        # The form: a new customer's request becomes an issue.
        page.goto(f"{base}/submit")
        page.fill("#name", "Quinn Portal")
        page.fill("#email", "quinn@portal.example")
        page.fill("#subject", FORM_SUBJECT)
        page.fill("#description", "The printer shows a skull.")
        page.click("button[type=submit]")
        result = page.locator("#result")
        result.wait_for(timeout=WAIT_MS)
        number = int(result.inner_text().split("#")[1].split(":")[0])

        page.goto(f"{base}/issues")
        subject = page.locator(f"#issue-{number} h2 .subject")
        assert subject.inner_text() == FORM_SUBJECT

        # Mail arrives while the page is open: it shows up without a reload.
        page.evaluate("window.stillTheSamePage = true")
        code, _ = smtp_transaction(
            "127.0.0.1",
            smtp_port,
            compose("nina@newcustomer.example", MAIL_SUBJECT),
            "nina@newcustomer.example",
            "support@acme.example",
        )
        assert code == 250
        arrived = page.locator(".issue h2 .subject", has_text="printer on fire")
        arrived.first.wait_for(timeout=WAIT_MS)
        assert arrived.first.inner_text() == MAIL_SUBJECT
        assert page.evaluate("window.stillTheSamePage") is True
        assert page.locator("main img").count() == 0  # the subject's <img> is only text

        # The web-form submitter is a Team seat, and the ledger says why.
        page.goto(f"{base}/users")
        row = page.locator('tr[data-email="quinn@portal.example"]')
        assert "web_form" in row.locator(".seat-team").inner_text()
        assert row.locator(".seat-support").inner_text().startswith("no")

        page.goto(f"{base}/")
        page.locator("#recent-issues").wait_for(timeout=WAIT_MS)
        assert page.locator("#recent-issues .subject").first.inner_text() == MAIL_SUBJECT
        page.wait_for_timeout(1500)  # one poll, so the live badge shows its time
        screenshot = page.screenshot(full_page=True)
        (tmp_path / "dashboard.png").write_bytes(screenshot)
        if os.environ.get("INTAKE_SIM_SCREENSHOT"):
            target = Path(os.environ["INTAKE_SIM_SCREENSHOT"])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / "dashboard.png", target)

        assert dialogs == [], "a hostile subject ran script"
        assert errors == []
        assert all(url.startswith(base) for url in requests), "the page fetched from elsewhere"
