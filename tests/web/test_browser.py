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
from datetime import UTC, datetime
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


# Every text run in a table cell, split at spaces and after hyphens (where a line may
# break): each piece must sit on one line. A Range over a word that the browser broke
# mid-word has two client rectangles.
BROKEN_WORDS_JS = """
() => {
  const broken = [];
  const walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement.closest("td, th")) continue;
    const text = node.textContent;
    for (const found of text.matchAll(/[^\\s-]+-?/g)) {
      const range = document.createRange();
      range.setStart(node, found.index);
      range.setEnd(node, found.index + found[0].length);
      // Chinese and Japanese break between any two characters: that is correct there.
      if (/[\\u3000-\\u9fff\\uac00-\\ud7af\\uff00-\\uffef]/.test(found[0])) continue;
      if (range.getClientRects().length > 1) broken.push(found[0]);
    }
  }
  return broken;
}
"""
PAGES = ["/", "/issues", "/issues/1", "/messages", "/outbox", "/users", "/report"]


@pytest.fixture(scope="module")
def demo_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = f"sqlite:///{tmp_path_factory.mktemp('browser-demo') / 'demo.db'}"
    made = CliRunner().invoke(app, ["demo", "--db", db])
    assert made.exit_code == 0, made.output
    with intake_sim(["web", "--port", "0"], {"web": web_port_in}, db) as running:
        yield f"http://127.0.0.1:{running.ports['web']}"


@pytest.mark.parametrize("width", [1400, 800])
def test_pages_use_the_width_and_never_break_a_word(
    demo_web: str, browser: sync_api.Browser, tmp_path: Path, width: int
) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    for path in PAGES:
        page.goto(f"{demo_web}{path}")
        name = path.strip("/").replace("/", "-") or "dashboard"
        page.screenshot(path=str(tmp_path / f"{name}-{width}.png"), full_page=True)
        assert page.evaluate(BROKEN_WORDS_JS) == [], (path, width)
        used = page.evaluate("document.querySelector('main').getBoundingClientRect().width")
        assert used >= width - 20, (path, width, used)  # all of it, less a scroll bar
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, width, "the page scrolls sideways; only a table may")
    page.close()


def test_clock_is_utc_and_licensing_shows_notifications_and_axis(
    demo_web: str, browser: sync_api.Browser
) -> None:
    # A browser far from UTC: its own 12-hour local time would show "11:24:14 PM".
    page = browser.new_page(viewport={"width": 1400, "height": 900}, timezone_id="America/New_York")
    page.goto(f"{demo_web}/report")
    status = page.locator("#live-status")
    utc_clock = r"/^live · \d\d:\d\d:\d\dZ$/"
    page.wait_for_function(
        f"() => {utc_clock}.test(document.getElementById('live-status').textContent)",
        timeout=WAIT_MS,
    )
    clock = datetime.strptime(status.inner_text().split(" · ")[1], "%H:%M:%SZ").time()
    now = datetime.now(UTC)
    apart = abs((now - datetime.combine(now.date(), clock, UTC)).total_seconds()) % 86_400
    assert min(apart, 86_400 - apart) < 120, (clock, now)  # UTC, not New York's time
    cards = page.locator("#notifications .card").all_inner_texts()
    assert any("customers notified" in card for card in cards)
    assert any("Team seats from notifications" in card for card in cards)
    assert "Without automatic email" in page.locator("#without-notifications").inner_text()
    ticks = [t.strip() for t in page.locator("svg.history text.tick").all_text_contents()]
    assert ticks[0] == "0" and len(ticks) >= 2 and int(ticks[-1]) > 0
    assert "ledger event" in (page.locator("svg.history text.axis-title").text_content() or "")
    page.close()
