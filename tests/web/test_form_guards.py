"""The form's guards against one client filling the directory: a limit per client
address as well as per typed address (its +tags counted as one), an Origin check,
and the Host guard on every loopback address, over real HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from simulator.org import Org
from simulator.pipeline.batch import prepare
from simulator.service import intake_service, web_service
from simulator.smtp.server import ListenerOptions
from simulator.store.db import open_store
from simulator.web.options import WebOptions
from tests.support.web import CSRF_FIELD, form

PER_ADDRESS = 3
PER_CLIENT = 6


@asynccontextmanager
async def site(
    url: str, org: Org, host: str = "127.0.0.1", **limits: int
) -> AsyncIterator[httpx.AsyncClient]:
    store = open_store(url)
    await asyncio.to_thread(prepare, store, org)
    options = WebOptions(host=host, port=0, **limits)
    try:
        async with (
            intake_service(store, org, ListenerOptions(port=0)) as service,
            web_service(store, org, options, service.writer) as (bound, port),
            httpx.AsyncClient(base_url=f"http://{bound}:{port}", timeout=30) as client,
        ):
            yield client
    finally:
        store.dispose()


async def post(client: httpx.AsyncClient, headers: dict[str, str] | None = None, **fields: str):
    page = await client.get("/submit")
    token = CSRF_FIELD.search(page.text)
    assert token, page.text
    return await client.post("/submit", data={"csrf": token.group(1), **fields}, headers=headers)


async def test_one_client_cannot_buy_allowances_with_new_addresses(sqlite_url: str, org: Org):
    async with site(
        sqlite_url, org, form_rate_limit=PER_ADDRESS, form_client_rate_limit=PER_CLIENT
    ) as client:
        codes = []
        for n in range(1, PER_ADDRESS + 2):
            answer = await post(client, **form(email=f"wendy+{n}@portal.example"))
            codes.append(answer.status_code)
        # A +tag is the same mailbox: the fourth one is over the per-address limit.
        assert codes == [200] * PER_ADDRESS + [429]
        assert "Too many submissions from wendy+4@portal.example" in answer.text
        # Fresh addresses from the same client: only until the client's own limit.
        codes = [
            (await post(client, **form(email=f"wendy{n}@portal.example"))).status_code
            for n in range(2, 5)
        ]
        assert codes == [200, 200, 429]
        refused = await post(client, **form(email="wendy9@portal.example"))
        assert refused.status_code == 429
        assert "your network address" in refused.text
        users = (await client.get("/api/users")).json()["items"]
        made = [u["email"] for u in users if u["email"].startswith("wendy")]
        assert len(made) == PER_ADDRESS + 2


async def test_a_post_from_another_site_is_refused(sqlite_url: str, org: Org) -> None:
    async with site(sqlite_url, org) as client:
        own = str(client.base_url).rstrip("/")
        for origin in ("http://attacker.example", "null", own.replace("http:", "https:")):
            answer = await post(client, headers={"origin": origin}, **form())
            assert answer.status_code == 403, origin
            assert "from another site" in answer.text
        assert (await client.get("/api/messages")).json()["items"] == []
        assert (await post(client, headers={"origin": own}, **form())).status_code == 200
        assert (await post(client, **form(subject="no Origin, as curl"))).status_code == 200


async def test_the_host_guard_holds_on_any_loopback_address(sqlite_url: str, org: Org) -> None:
    async with site(sqlite_url, org, host="127.0.0.2") as client:
        rebinding = await client.get("/api/users", headers={"host": "attacker.example"})
        assert rebinding.status_code == 400
        assert (await client.get("/api/users")).status_code == 200  # Host: 127.0.0.2:port
        named = await client.get("/api/users", headers={"host": "localhost"})
        assert named.status_code == 200


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.3", False)])
async def test_a_web_host_that_is_not_loopback_is_warned_about(
    sqlite_url: str, org: Org, caplog: pytest.LogCaptureFixture, host: str, warned: bool
) -> None:
    with caplog.at_level(logging.WARNING):
        async with site(sqlite_url, org, host=host):
            pass
    found = [r.getMessage() for r in caplog.records if "not a loopback address" in r.message]
    assert bool(found) == warned, found


async def test_the_json_api_writes_bidi_controls_escaped(sqlite_url: str, org: Org) -> None:
    async with site(sqlite_url, org) as client:
        subject = "invoice\u202efdp.exe"
        assert (await post(client, **form(subject=subject))).status_code == 200
        answer = await client.get("/api/messages")
    assert "\u202e" not in answer.text and "\\u202e" in answer.text
    assert answer.json()["items"][0]["subject"] == subject  # parsed back exactly as submitted
