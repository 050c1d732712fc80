"""The listener's fast path for MAIL and RCPT addresses answers exactly what aiosmtpd's
own parser answers, for any argument it takes; everything else goes to that parser, and
where that parser breaks, the address is malformed."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.org import Org
from simulator.smtp.server import ConnectionGate, IntakeSMTP, ListenerOptions, plain_address
from simulator.store.db import open_store
from tests.support.listeners import running_listener

# What an address and its parameters may be made of, the characters the parser treats
# specially first, so that generated arguments often sit on a boundary of its grammar.
TRICKY = [*'aZ09.-_+=?@<>()[]"\\,;: \t\r\n', "é", "\x00", "\x1c", "\xa0"]
PIECES = st.text(alphabet=st.sampled_from(TRICKY), max_size=12) | st.text(max_size=6)
ATOMS = st.text(alphabet=st.sampled_from(list("az09!#$%&'*+/=?^_`{|}~-")), min_size=1, max_size=8)


def dot_atom() -> st.SearchStrategy[str]:
    return st.lists(ATOMS, min_size=1, max_size=3).map(".".join)


@st.composite
def arguments(draw: st.DrawFn) -> str:
    """A MAIL or RCPT argument: mostly near the plain form, sometimes anything."""
    if draw(st.booleans()):
        return draw(PIECES)
    local = draw(dot_atom() | PIECES)
    domain = draw(dot_atom() | PIECES)
    rest = draw(st.sampled_from(["", " ", "  ", "\t", " (", "(", "x"]) | PIECES)
    params = draw(st.sampled_from(["", "SIZE=2048", "SIZE=1 BODY=8BITMIME", "(c) SIZE=1"]))
    return f"<{local}@{domain}>{rest}{params}"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[IntakeSMTP, IntakeSMTP]]:
    """Two real listener sessions (no connection): without and with a local-part limit."""
    loop = asyncio.new_event_loop()

    def session(local_part_limit: int) -> IntakeSMTP:
        server = IntakeSMTP(object(), ListenerOptions(), ConnectionGate(0), loop=loop)
        server.local_part_limit = local_part_limit  # aiosmtpd's class attribute, 0: none
        return server

    try:
        yield session(0), session(5)
    finally:
        loop.close()


@settings(max_examples=500)
@given(arguments())
def test_plain_address_answers_what_aiosmtpd_answers(
    servers: tuple[IntakeSMTP, IntakeSMTP], arg: str
) -> None:
    fast = plain_address(arg)
    if fast is not None:
        assert fast == SMTP._getaddr(servers[0], arg)


@given(arguments())
def test_the_session_parses_as_aiosmtpd_does(
    servers: tuple[IntakeSMTP, IntakeSMTP], arg: str
) -> None:
    for server in servers:
        assert server._getaddr(arg) == outcome(partial(SMTP._getaddr, server), arg)


def outcome(parse: Callable[[str], tuple[str | None, str | None]], arg: str) -> object:
    """What `parse` returns; where aiosmtpd's parser breaks (`<`, `<0@[>`), a malformed
    address (None, None), as the session answers."""
    try:
        return parse(arg)
    except Exception:
        return None, None


def test_where_aiosmtpds_parser_breaks_the_address_is_malformed(
    servers: tuple[IntakeSMTP, IntakeSMTP],
) -> None:
    for arg in ("<", "<0@[>", "<@[\t"):
        with pytest.raises((IndexError, AttributeError, UnboundLocalError)):
            SMTP._getaddr(servers[0], arg)
        assert servers[0]._getaddr(arg) == (None, None)


async def test_a_broken_address_is_a_553_refusal_not_an_internal_error(
    sqlite_url: str, org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused as malformed (so the error tarpit counts it), one refusal line, no traceback."""
    caplog.set_level(logging.INFO)
    store = open_store(sqlite_url)
    async with running_listener(store, org, ListenerOptions(port=0)) as listener:
        answers = await asyncio.to_thread(broken_mail_from, listener.host, listener.port)
    store.dispose()
    assert [code for code, _ in answers] == [553, 553, 250]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused ")]
    assert len(refused) == 2 and all(line.startswith("refused 553 ") for line in refused)


def broken_mail_from(host: str, port: int) -> list[tuple[int, bytes]]:
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo("tests.localhost")
        return [client.docmd("MAIL", arg) for arg in ("FROM:<", "FROM:<0@[>", "FROM:<a@b.example>")]


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("<sender@example.test>", ("sender@example.test", "")),
        ("<support@acme.example> SIZE=2048", ("support@acme.example", "SIZE=2048")),
        ("<a.b+tag@sub.example.org>  BODY=8BITMIME", ("a.b+tag@sub.example.org", "BODY=8BITMIME")),
    ],
)
def test_what_clients_send_takes_the_fast_path(arg: str, expected: tuple[str, str]) -> None:
    assert plain_address(arg) == expected


@pytest.mark.parametrize(
    "arg",
    [
        "<>",
        '<"a b"@example.test>',
        "<a@[127.0.0.1]>",
        "<@relay:a@example.test>",
        "<a@example.test> (comment)",
        "<=?utf-8?q?a?=@example.test>",
        "<é@example.test>",
        "a@example.test",
        " <a@example.test>",
    ],
)
def test_other_forms_are_left_to_aiosmtpd(arg: str) -> None:
    assert plain_address(arg) is None
