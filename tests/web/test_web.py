"""The web view, web form and JSON API, over real HTTP next to a real SMTP listener."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from simulator import __version__
from simulator.cli.app import app
from simulator.org import Org
from simulator.pipeline.batch import prepare
from simulator.service import intake_service, web_service
from simulator.smtp.server import ListenerOptions
from simulator.store import schema
from simulator.store.db import open_store
from simulator.web.api import API_ROUTES, openapi_document
from simulator.web.options import WebOptions
from simulator.web.pages import CSRF_COOKIE
from tests.support.listeners import Listener
from tests.support.mail import compose
from tests.support.processes import intake_sim, smtp_port_in, web_port_in
from tests.support.samples import FIXTURES
from tests.support.web import CSRF_FIELD, form

# The revision before deliveries.channel was added.
CHANNEL_REVISION_PARENT = "a9d47e3c5b21"

HOSTILE = "<script>alert(1)</script>"
RATE_LIMIT = 3


@dataclass
class Site:
    smtp: Listener
    http: httpx.AsyncClient

    async def json(self, path: str) -> Any:
        answer = await self.http.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def items(self, path: str) -> list[Any]:
        """Every row of a paginated listing, following its `next` links."""
        rows: list[Any] = []
        following: str | None = path
        while following:
            page = await self.json(following)
            rows += page["items"]
            following = page["next"]
        return rows

    async def post_form(self, **fields: str) -> httpx.Response:
        """GET the form for a token (and its cookie), then POST the fields with it."""
        page = await self.http.get("/submit")
        token = CSRF_FIELD.search(page.text)
        assert token, page.text
        return await self.http.post("/submit", data={"csrf": token.group(1), **fields})


@pytest.fixture
async def site(db_url: str, org: Org) -> AsyncIterator[Site]:
    store = open_store(db_url)
    await asyncio.to_thread(prepare, store, org)
    options = WebOptions(port=0, form_rate_limit=RATE_LIMIT)
    async with (
        intake_service(store, org, ListenerOptions(port=0)) as service,
        web_service(store, org, options, service.writer) as (host, port),
        httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=30) as client,
    ):
        yield Site(Listener(service.host, service.port, store, org), client)
    store.dispose()


async def test_form_submission_becomes_an_issue_and_a_web_form_seat(site: Site) -> None:
    answer = await site.post_form(**form())
    assert answer.status_code == 200, answer.text
    assert "issue <strong>#1</strong>" in answer.text

    [issue] = await site.items("/api/issues")
    assert issue["subject"] == "Cannot reset my password"
    assert issue["submitter"] == "quinn@portal.example"
    [message] = await site.items("/api/messages")
    assert message["channel"] == "web_form"
    assert message["outcome"] == "created_issue"
    user = next(u for u in await site.items("/api/users") if u["email"] == issue["submitter"])
    assert (user["role"], user["origin"], user["name"]) == ("customer", "sender", form()["name"])
    assert (user["support_seat"], user["team_seat"]) == (False, True)
    seat = [e for e in await site.items("/api/ledger") if e["user"] == issue["submitter"]]
    assert [(e["model"], e["delta"], e["reason"], e["delivery"]) for e in seat] == [
        ("team", 1, "web_form", message["id"])
    ]

    # The same customer writing by mail later joins the same user: no second seat.
    code, _ = await site.smtp.send(compose("quinn@portal.example", "Also this"))
    assert code == 250
    messages = await site.items("/api/messages")
    assert [m["channel"] for m in messages] == ["web_form", "smtp"]
    assert (
        len([e for e in await site.items("/api/ledger") if e["user"] == "quinn@portal.example"])
        == 1
    )


async def test_form_errors_are_shown_and_nothing_is_stored(site: Site) -> None:
    empty = await site.post_form(name="", email="", subject="", description="")
    assert empty.status_code == 400
    for field in ("name", "email", "subject", "description"):
        assert f'id="error-{field}">Required.' in empty.text

    cases = {
        "email": ["not-an-address", "a@b", "two@at@example.com", "sp ace@example.com"],
        "subject": ["Hi\r\nBcc: victim@example.com", "x" * 201],
        "name": ["Eve\nBcc: victim@example.com"],
        "description": ["nul \x00 byte", "y" * 10_001],
    }
    for field, values in cases.items():
        for value in values:
            answer = await site.post_form(**form(**{field: value}))
            assert answer.status_code == 400, (field, value)
            assert f'id="error-{field}"' in answer.text, (field, value)
    own = await site.post_form(**form(email="support@acme.example"))
    assert own.status_code == 400 and "our own intake address" in own.text
    assert await site.items("/api/messages") == []


async def test_form_needs_its_csrf_token(site: Site) -> None:
    no_token = await site.http.post("/submit", data=form())
    assert no_token.status_code == 403
    assert "expired" in no_token.text
    page = await site.http.get("/submit")
    found = CSRF_FIELD.search(page.text)
    assert found
    good, forged = found.group(1), "1700000000.forged.0000"
    for cookie, field in [(forged, good), (good, forged), (forged, forged), (good[:-1], good)]:
        answer = await site.http.post(
            "/submit",
            data={"csrf": field, **form()},
            headers={"cookie": f"{CSRF_COOKIE}={cookie}"},
        )
        assert answer.status_code == 403, (cookie, field)
    assert await site.items("/api/messages") == []


async def test_form_rate_limit_per_address(site: Site) -> None:
    for n in range(RATE_LIMIT):
        answer = await site.post_form(**form(subject=f"Request {n}"))
        assert answer.status_code == 200, answer.text
    refused = await site.post_form(**form(subject="One too many"))
    assert refused.status_code == 429
    assert "Too many submissions from quinn@portal.example" in refused.text
    assert "One too many" in refused.text  # the form keeps what was typed
    other = await site.post_form(**form(email="someone.else@portal.example"))
    assert other.status_code == 200
    subjects = [m["subject"] for m in await site.items("/api/messages")]
    assert "One too many" not in subjects and len(subjects) == RATE_LIMIT + 1


async def test_hostile_mail_is_shown_as_text(site: Site) -> None:
    code, _ = await site.smtp.send(
        compose(f'"{HOSTILE}" <mallory@customer.example>', HOSTILE, body=HOSTILE)
    )
    assert code == 250
    answer = await site.post_form(**form(name=HOSTILE, subject="<img src=x onerror=alert(2)>"))
    assert answer.status_code == 200
    for path in ("/", "/issues", "/users", "/report"):
        page = await site.http.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (await site.http.get("/issues")).text
    assert "&lt;img src=x onerror=alert(2)&gt;" in (await site.http.get("/")).text
    headers = (await site.http.get("/")).headers
    assert "script-src" not in headers["content-security-policy"]  # default-src 'self' rules
    assert headers["x-content-type-options"] == "nosniff"


async def test_only_the_form_writes(site: Site) -> None:
    code, _ = await site.smtp.send(compose("carol@customer.example", "Before"))
    assert code == 250
    before = await site.json("/api/version")
    paths = ["/", "/issues", "/users", "/report", "/api/issues", "/api/users", "/api/messages"]
    paths += ["/api/ledger", "/api/report", "/api/version", "/api/openapi.json", "/static/app.js"]
    for path in paths:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            answer = await site.http.request(method, path, data={"x": "1"})
            assert answer.status_code == 405, (method, path, answer.status_code)
    for method in ("PUT", "PATCH", "DELETE"):
        assert (await site.http.request(method, "/submit")).status_code == 405
    assert await site.json("/api/version") == before


async def test_foreign_host_names_and_bad_queries_are_refused(site: Site) -> None:
    rebinding = await site.http.get("/api/users", headers={"host": "attacker.example"})
    assert rebinding.status_code == 400
    bad = await site.http.get("/api/report", params={"as_of": "yesterday"})
    assert bad.status_code == 400
    assert "ISO-8601" in bad.json()["error"]
    assert "--" not in bad.json()["error"], "the API speaks of as_of, not of a CLI flag"
    # A filter with an unknown value is refused, not answered with an empty list.
    for path, name in (("/api/messages", "outcome"), ("/api/ledger", "model")):
        unknown = await site.http.get(path, params={name: "bogus"})
        assert unknown.status_code == 400, path
        assert f"{name} 'bogus' is not one of" in unknown.json()["error"]
    wrong_type = await site.http.post("/submit", content=b"{}", headers={"content-type": "a/b"})
    assert wrong_type.status_code == 415


async def test_pages_poll_a_version_that_moves_with_mail(site: Site) -> None:
    first = await site.json("/api/version")
    page = await site.http.get("/issues")
    assert f'data-version="{first["deliveries"]}.{first["seat_events"]}"' in page.text
    code, _ = await site.smtp.send(compose("new.customer@customer.example", "Fresh"))
    assert code == 250
    second = await site.json("/api/version")
    assert second["deliveries"] == first["deliveries"] + 1
    assert second["seat_events"] == first["seat_events"] + 1


# --- the JSON API against the CLI ------------------------------------------------------

runner = CliRunner()


def cli_json(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('web-demo') / 'demo.db'}"
    cli_json("demo", "--db", url)
    return url


@pytest.fixture
async def demo_site(demo_db: str, org: Org) -> AsyncIterator[httpx.AsyncClient]:
    store = open_store(demo_db)
    async with (
        web_service(store, org, WebOptions(port=0)) as (host, port),
        httpx.AsyncClient(base_url=f"http://{host}:{port}") as client,
    ):
        yield client
    store.dispose()


def without_as_of(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "as_of"}


async def test_api_answers_equal_the_cli_json(demo_db: str, demo_site: httpx.AsyncClient) -> None:
    pairs = {
        "/api/issues": ["issues"],
        "/api/users": ["users"],
        "/api/messages": ["messages"],
        "/api/messages?outcome=filtered": ["messages", "--outcome", "filtered"],
        "/api/ledger": ["ledger"],
        "/api/ledger?model=team": ["ledger", "--model", "team"],
        "/api/report?as_of=2026-01-01T00:00Z": ["report", "--as-of", "2026-01-01T00:00Z"],
    }
    for path, command in pairs.items():
        answer = (await demo_site.get(path)).json()
        if not path.startswith("/api/report"):
            assert answer["next"] is None, path  # the demo fits on one page
            answer = answer["items"]
        assert answer == cli_json(*command, "--db", demo_db), path
        assert answer or path.startswith("/api/report"), f"{path} is empty: nothing compared"
    api_report = (await demo_site.get("/api/report")).json()
    assert without_as_of(api_report) == without_as_of(cli_json("report", "--db", demo_db))
    assert api_report["deliveries"]["accepted"] == len(list(FIXTURES.glob("*.eml")))


async def test_openapi_document_is_valid_and_describes_the_answers(
    demo_site: httpx.AsyncClient,
) -> None:
    served = (await demo_site.get("/api/openapi.json")).json()
    assert served == openapi_document()
    assert served["info"]["version"] == __version__
    validate_openapi(served)
    for path, item in served["paths"].items():
        answer = await demo_site.get(path.replace("{number}", "1").replace("{id}", "1"))
        assert answer.status_code == 200, path
        content = item["get"]["responses"]["200"]["content"]
        if "application/json" not in content:  # the raw message: bytes, as a download
            assert answer.headers["content-type"] == "message/rfc822", path
            assert answer.headers["content-disposition"].startswith("attachment;"), path
            continue
        schema = content["application/json"]["schema"]
        validator = Draft202012Validator({**schema, "components": served["components"]})
        errors = [e.message for e in validator.iter_errors(answer.json())]
        assert not errors, (path, errors[:3])
        if isinstance(answer.json(), dict) and "items" in answer.json():
            assert answer.json()["items"], f"{path}: an empty page validates anything"
    routes = {re.sub(r":\w+}", "}", route.path) for route in API_ROUTES}
    assert routes == set(served["paths"])


# --- processes -------------------------------------------------------------------------


def test_serve_with_web_port_answers_http_and_smtp(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'both.db'}"
    args = ["serve", "--port", "0", "--web-port", "0"]
    with intake_sim(args, {"smtp": smtp_port_in, "web": web_port_in}, db) as running:
        sent = runner.invoke(
            app,
            ["send", "--port", str(running.ports["smtp"]), str(FIXTURES / "01-new-plain-text.eml")],
        )
        assert sent.exit_code == 0, sent.output
        base = f"http://127.0.0.1:{running.ports['web']}"
        [message] = httpx.get(f"{base}/api/messages").json()["items"]
        assert (message["channel"], message["outcome"]) == ("smtp", "created_issue")
        assert httpx.get(f"{base}/api/messages/{message['id']}").json()["peer"] == "127.0.0.1"
        page = httpx.get(f"{base}/issues/{message['issue']}").text
        assert 'via smtp from <span class="peer">127.0.0.1</span>' in page


def test_web_alone_takes_form_submissions(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'web.db'}"
    with (
        intake_sim(["web", "--port", "0"], {"web": web_port_in}, db) as running,
        httpx.Client(base_url=f"http://127.0.0.1:{running.ports['web']}") as client,
    ):
        token = CSRF_FIELD.search(client.get("/submit").text)
        assert token
        answer = client.post("/submit", data={"csrf": token.group(1), **form()})
        assert answer.status_code == 200, answer.text
        [message] = client.get("/api/messages").json()["items"]
        assert message["channel"] == "web_form"
    assert cli_json("issues", "--db", db)[0]["submitter"] == "quinn@portal.example"


def test_a_database_from_before_channels_gains_the_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    schema.upgrade(engine, CHANNEL_REVISION_PARENT)  # the schema before channels existed
    engine.dispose()
    cli_json("ingest", "--db", url, str(FIXTURES / "01-new-plain-text.eml"))  # upgrades it
    [message] = cli_json("messages", "--db", url)
    assert message["channel"] == "ingest"
    assert message["outcome"] == "created_issue"


def test_rows_from_before_channels_read_as_smtp(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    schema.upgrade(engine, CHANNEL_REVISION_PARENT)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO deliveries (received_at, envelope_from, recipients, message_id, "
                'sender_name, subject, body_text, attachments, in_reply_to, "references", '
                "outcome, size, raw) VALUES ('2026-01-01 00:00:00', '', '', 'old@x', '', "
                "'old', '', '[]', '', '', 'filtered', 0, x'00')"
            )
        )
    engine.dispose()
    open_store(url).dispose()  # what serve, web and ingest do on start: upgrade SQLite
    [message] = cli_json("messages", "--db", url)
    assert message["channel"] == "smtp"  # the default for rows from before


async def test_form_from_a_noise_address_is_kept_but_opens_no_issue(site: Site) -> None:
    answer = await site.post_form(**form(email="no-reply@portal.example"))
    assert answer.status_code == 200
    assert "did not open an issue" in answer.text and "no_reply" in answer.text
    [message] = await site.items("/api/messages")
    assert (message["channel"], message["outcome"], message["reason"]) == (
        "web_form",
        "filtered",
        "no_reply",
    )
    assert await site.items("/api/issues") == []


async def test_a_conversation_and_a_message_in_full(
    demo_db: str, demo_site: httpx.AsyncClient
) -> None:
    issue = (await demo_site.get("/api/issues/1")).json()
    assert issue == cli_json("show", "issue", "1", "--db", demo_db)
    assert issue["messages"] and all(m["issue"] == 1 for m in issue["messages"])
    first = issue["messages"][0]
    assert first["text"] and ["Subject", first["subject"]] in first["headers"]
    assert (await demo_site.get(f"/api/messages/{first['id']}")).json() == first
    raw = await demo_site.get(f"/api/messages/{first['id']}/raw")
    assert raw.headers["content-type"] == "message/rfc822"
    assert first["message_id"].encode() in raw.content
    page = await demo_site.get("/issues/1")
    assert page.status_code == 200
    assert first["text"].splitlines()[0].replace('"', "&#34;") in page.text
    assert f'href="/api/messages/{first["id"]}/raw"' in page.text
    listing = await demo_site.get("/issues")
    assert 'href="/issues/1"' in listing.text
    for missing in ("/issues/999", "/api/issues/999", "/api/messages/999", "/api/messages/999/raw"):
        answer = await demo_site.get(missing)
        assert answer.status_code == 404, missing
        assert answer.json()["error"].startswith("no ")


async def test_messages_page_filters_and_searches_and_the_outbox_page(
    demo_site: httpx.AsyncClient,
) -> None:
    everything = (await demo_site.get("/api/messages")).json()["items"]
    filtered = await demo_site.get("/messages", params={"outcome": "filtered"})
    assert filtered.status_code == 200
    wanted = [m for m in everything if m["outcome"] == "filtered"]
    others = [m for m in everything if m["outcome"] != "filtered"]
    assert all(f'href="/api/messages/{m["id"]}"' in filtered.text for m in wanted)
    assert not any(f'href="/api/messages/{m["id"]}"' in filtered.text for m in others)
    carol = await demo_site.get("/messages", params={"q": "CAROL@"})
    hits = [m for m in everything if "carol@" in (m["sender"] or "")]
    assert hits and all(f'href="/api/messages/{m["id"]}"' in carol.text for m in hits)
    assert "bob@globex.example" not in carol.text
    assert (await demo_site.get("/messages", params={"outcome": "bogus"})).status_code == 400
    mailboxes = {m["intake_address"] for m in everything if m["intake_address"]}
    page = (await demo_site.get("/messages")).text
    assert mailboxes and ">mailbox</th>" in page
    shown_text = page.replace("<wbr>", "")  # an address may wrap after @ and before a dot
    assert all(f">{address}</td>" in shown_text for address in mailboxes)
    assert "support@<wbr>acme<wbr>.example" in page
    outbox = await demo_site.get("/outbox")
    assert outbox.status_code == 200 and "acknowledgement" in outbox.text


# --- pages of a listing, and the messages filters ---------------------------------------


async def test_api_listings_come_in_pages_that_add_up(
    demo_db: str, demo_site: httpx.AsyncClient
) -> None:
    for path, command in (
        ("/api/messages", ["messages"]),
        ("/api/issues", ["issues"]),
        ("/api/users", ["users"]),
        ("/api/ledger", ["ledger"]),
        ("/api/outbox", ["outbox"]),
    ):
        everything = cli_json(*command, "--db", demo_db)
        assert len(everything) > 3, path
        walked, following, pages = [], f"{path}?limit=3", 0
        while following:
            answer = await demo_site.get(following)
            assert answer.status_code == 200, following
            page = answer.json()
            assert (page["total"], page["limit"]) == (len(everything), 3)
            assert len(page["items"]) <= 3
            if page["next"]:
                assert answer.headers["link"] == f'<{page["next"]}>; rel="next"'
            else:
                assert "link" not in answer.headers
            walked += page["items"]
            following, pages = page["next"], pages + 1
        assert walked == everything, path
        assert pages == -(-len(everything) // 3)
    default = (await demo_site.get("/api/messages")).json()
    assert default["limit"] == 100 and default["offset"] == 0
    for bad in ({"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"offset": "-1"}):
        answer = await demo_site.get("/api/messages", params=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"].startswith(next(iter(bad)))


async def test_api_messages_filters(demo_db: str, demo_site: httpx.AsyncClient) -> None:
    everything = cli_json("messages", "--db", demo_db)

    async def ids(**params: str) -> list[int]:
        answer = await demo_site.get("/api/messages", params={"limit": "1000", **params})
        assert answer.status_code == 200, (params, answer.text)
        return [m["id"] for m in answer.json()["items"]]

    reasons = {m["reason"] for m in everything if m["reason"]}
    assert len(reasons) > 5  # every kind: filtered, quarantined, threaded, duplicate
    for reason in reasons:
        assert await ids(reason=reason) == [m["id"] for m in everything if m["reason"] == reason]
    sender = next(m["sender"] for m in everything if m["sender"])
    wanted = [m["id"] for m in everything if (m["sender"] or "").lower() == sender.lower()]
    assert await ids(sender=sender.upper()) == wanted
    mailbox = next(m["intake_address"] for m in everything if m["intake_address"])
    wanted = [m["id"] for m in everything if m["intake_address"] == mailbox]
    assert await ids(intake=mailbox.upper()) == wanted
    assert await ids(intake="nobody@acme.example") == []
    times = sorted({m["received_at"] for m in everything})
    middle = times[len(times) // 2]
    assert await ids(since=middle) == [m["id"] for m in everything if m["received_at"] >= middle]
    assert await ids(until=middle) == [m["id"] for m in everything if m["received_at"] < middle]
    day = middle[:10]
    on_day = [m["id"] for m in everything if m["received_at"][:10] == day]
    assert await ids(since=day, until=day) == on_day and on_day
    assert await ids(q="100%_") == []  # LIKE's own characters are taken literally
    for bad in ({"reason": "bogus"}, {"since": "yesterday"}, {"status": "x"}):
        path = "/api/outbox" if "status" in bad else "/api/messages"
        assert (await demo_site.get(path, params=bad)).status_code == 400, bad
    sent = cli_json("outbox", "--status", "sent", "--db", demo_db)
    answer = (await demo_site.get("/api/outbox", params={"status": "sent"})).json()
    assert answer["items"] == sent


async def test_messages_page_filters_by_reason_mailbox_and_date_and_pages(
    demo_db: str, demo_site: httpx.AsyncClient
) -> None:
    everything = cli_json("messages", "--db", demo_db)

    def shown(html: str) -> set[int]:
        return {m["id"] for m in everything if f'href="/api/messages/{m["id"]}"' in html}

    reason = next(m["reason"] for m in everything if m["reason"])
    page = (await demo_site.get("/messages", params={"reason": reason})).text
    assert shown(page) == {m["id"] for m in everything if m["reason"] == reason}
    assert f'<option value="{reason}" selected>' in page
    mailbox = next(m["intake_address"] for m in everything if m["intake_address"])
    page = (await demo_site.get("/messages", params={"intake": mailbox})).text
    assert shown(page) == {m["id"] for m in everything if m["intake_address"] == mailbox}
    day = everything[-1]["received_at"][:10]
    page = (await demo_site.get("/messages", params={"since": day, "until": day})).text
    assert shown(page) == {m["id"] for m in everything if m["received_at"][:10] == day}
    assert f'name="since" value="{day}"' in page
    # Pages, newest first: two rows each, and "older" leads on until every row was shown.
    seen: list[set[int]] = []
    following: str | None = "/messages?limit=2"
    while following:
        page = (await demo_site.get(following.replace("&amp;", "&"))).text
        seen.append(shown(page))
        found = re.search(r'<a href="([^"]+)" rel="next">older', page)
        following = found.group(1) if found else None
    assert [len(ids) for ids in seen[:-1]] == [2] * (len(seen) - 1)
    assert set().union(*seen) == {m["id"] for m in everything}
    assert max(seen[0]) == everything[-1]["id"]  # the newest come first
    assert (
        f"1\u20132 of {len(everything)}, newest first"
        in (await demo_site.get("/messages?limit=2")).text
    )


def test_every_api_answer_is_built_off_the_event_loop() -> None:
    """Starlette runs a plain def in its thread pool: a page being read and turned into
    JSON never holds the loop the SMTP listener shares (a coroutine here would)."""
    for route in API_ROUTES:
        assert not inspect.iscoroutinefunction(route.endpoint), route.path


async def test_report_page_draws_the_monthly_chart_of_the_cli(demo_site: httpx.AsyncClient) -> None:
    """The report page's monthly chart is the one chart module's SVG: money axis in
    the currency, whole seat ticks, no script."""
    page = (await demo_site.get("/report")).text
    assert 'id="month-chart"' in page and "<svg" in page
    chart = page.split('id="month-chart"', 1)[1].split("</figure>", 1)[0]
    assert "USD per month" in chart and "billed seats" in chart
    assert "<script" not in chart and ">0.5<" not in chart


async def test_messages_filters_and_pages_on_each_backend(site: Site) -> None:
    """The filters are SQL (LIKE with its own escape, lower(), a counted subquery):
    the same answers from SQLite and PostgreSQL."""
    for sender, subject in [
        ("Ann@Customer.example", "Refund 100% please"),
        ("bob@customer.example", "refund_form broken"),
        ("cy@other.example", "Hello"),
    ]:
        code, _ = await site.smtp.send(compose(sender, subject), mail_from=sender)
        assert code == 250

    async def subjects(**params: str) -> list[str]:
        page = await site.json("/api/messages?" + urlencode(params))
        return [m["subject"] for m in page["items"]]

    assert await subjects(q="REFUND") == ["Refund 100% please", "refund_form broken"]
    assert await subjects(q="100%") == ["Refund 100% please"]  # % is a character here
    assert await subjects(q="d_f") == ["refund_form broken"]  # and so is _
    assert await subjects(sender="ann@customer.EXAMPLE") == ["Refund 100% please"]
    everything = await site.items("/api/messages")
    assert await subjects(since=everything[1]["received_at"]) == [
        m["subject"] for m in everything[1:]
    ]
    page = await site.json("/api/messages?limit=2&offset=1")
    assert (page["total"], [m["id"] for m in page["items"]]) == (
        3,
        [m["id"] for m in everything[1:]],
    )
    assert page["next"] is None
