"""Every refusal the listener sends is logged with its peer, sender, recipient and reason,
and a flood of one kind of refusal is rate-limited in the log."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import pytest

from simulator.logs import RepeatFilter
from simulator.org import Org
from simulator.pipeline.batch import prepare
from simulator.service import intake_service
from simulator.smtp import replies
from simulator.smtp.chaos import Chaos, parse_rule
from simulator.smtp.server import ListenerOptions, command_address, shown
from simulator.store.db import open_store
from tests.support.listeners import Listener, running_listener
from tests.support.mail import compose

SENDER = "carol@customer.example"
INTAKE = "support@acme.example"


@pytest.fixture
def refusals(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="intake_sim.smtp")
    # Each test starts with a fresh repeat budget: refusals logged by earlier tests in
    # the same process must not count against (or be summarised into) this one's lines.
    logger = logging.getLogger("intake_sim.smtp")
    for found in [*logger.filters, *(f for h in logging.getLogger().handlers for f in h.filters)]:
        if isinstance(found, RepeatFilter):
            found.seen.clear()
    return caplog


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused ")]


@asynccontextmanager
async def listening(sqlite_url: str, org: Org, **options: object) -> AsyncIterator[Listener]:
    store = open_store(sqlite_url)
    async with running_listener(store, org, ListenerOptions(port=0, **options)) as listener:  # type: ignore[arg-type]
        yield listener
    store.dispose()


def session(listener: Listener, steps: list[tuple[str, str]]) -> list[tuple[int, bytes]]:
    """Run raw commands (name, argument) in one session; the replies, in order."""
    with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
        client.ehlo("tests.localhost")
        answers = []
        for command, arg in steps:
            if command == "data":
                answers.append(client.data(arg.encode()))
            else:
                answers.append(client.docmd(command, arg))
        return answers


async def test_550_at_rcpt_names_peer_sender_recipient(
    sqlite_url: str, org: Org, refusals: pytest.LogCaptureFixture
) -> None:
    async with listening(sqlite_url, org) as listener:
        answers = await asyncio.to_thread(
            session,
            listener,
            [("MAIL", f"FROM:<{SENDER}>"), ("RCPT", "TO:<nobody@acme.example>")],
        )
    assert answers[1][0] == 550
    [line] = refusal_lines(refusals)
    assert line.startswith(f"refused {replies.S550_NO_SUCH_MAILBOX} peer=127.0.0.1:")
    assert line.endswith(f" sender={SENDER} recipient=nobody@acme.example")


async def test_552_for_headers_and_for_size_are_logged(
    sqlite_url: str, org: Org, refusals: pytest.LogCaptureFixture
) -> None:
    too_many_headers = compose(SENDER, to=INTAKE, headers={f"X-H{i}": "v" for i in range(30)})
    async with listening(sqlite_url, org, max_headers=10, max_message_size=4000) as listener:
        code, _ = await listener.send(too_many_headers, mail_from=SENDER)
        assert code == 552
        code, _ = await listener.send(
            compose(SENDER, to=INTAKE, body=("x" * 70 + "\r\n") * 100), SENDER
        )
        assert code == 552
    headers, size = refusal_lines(refusals)
    assert headers.startswith(f"refused {replies.S552_TOO_MANY_HEADERS} peer=127.0.0.1:")
    assert headers.endswith(f"sender={SENDER} recipient={INTAKE}")
    # aiosmtpd's own 552 goes through the same line.
    assert size.startswith("refused 552 ") and size.endswith(f"sender={SENDER} recipient={INTAKE}")


async def test_451_when_storage_fails_is_a_warning_with_the_envelope(
    sqlite_url: str, org: Org, refusals: pytest.LogCaptureFixture
) -> None:
    store = open_store(sqlite_url)
    await asyncio.to_thread(prepare, store, org)

    def open_session(port: int) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", port, timeout=10)
        client.ehlo("tests.localhost")
        client.mail(SENDER)
        client.rcpt(INTAKE)
        return client

    async with intake_service(store, org, ListenerOptions(port=0)) as service:
        client = await asyncio.to_thread(open_session, service.port)
        await service.writer.close()  # storage goes away while the session is open
        code, _ = await asyncio.to_thread(client.data, compose(SENDER, to=INTAKE))
        client.close()
    store.dispose()
    assert code == 451
    [record] = [r for r in refusals.records if r.getMessage().startswith("refused 451")]
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith(f"sender={SENDER} recipient={INTAKE}")


@pytest.mark.parametrize(
    ("rule", "expected_end"),
    [
        ("connect:421:1", "sender=- recipient=-"),
        ("mail:451:1", f"sender={SENDER} recipient=-"),
        ("rcpt:450:1", f"sender={SENDER} recipient={INTAKE}"),
        ("data:554:1", f"sender={SENDER} recipient={INTAKE}"),
    ],
)
async def test_chaos_faults_are_logged(
    sqlite_url: str, org: Org, refusals: pytest.LogCaptureFixture, rule: str, expected_end: str
) -> None:
    chaos = Chaos([parse_rule(rule)], seed=1)

    def transaction(listener: Listener) -> None:
        # A refused connection raises; the log is what this test reads.
        with suppress(smtplib.SMTPException):
            session(
                listener,
                [
                    ("MAIL", f"FROM:<{SENDER}>"),
                    ("RCPT", f"TO:<{INTAKE}>"),
                    ("data", "Subject: x\r\n\r\nhi\r\n"),
                ],
            )

    async with listening(sqlite_url, org, chaos=chaos) as listener:
        await asyncio.to_thread(transaction, listener)
    lines = [line for line in refusal_lines(refusals) if "(chaos)" in line]
    assert lines, refusal_lines(refusals)
    stage = rule.split(":")[0]
    assert lines[0].startswith(f"refused {parse_rule(rule).reply} peer=127.0.0.1:")
    assert stage in lines[0] and lines[0].endswith(expected_end)


async def test_a_flood_of_refusals_is_rate_limited(sqlite_url: str, org: Org) -> None:
    """Forty 550s write five lines; a 553 in the middle of them still gets its own."""
    written: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            written.append(record.getMessage())

    handler = Collect()
    handler.addFilter(RepeatFilter())
    logger = logging.getLogger("intake_sim.smtp")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    steps = [("MAIL", f"FROM:<{SENDER}>")]
    steps += [("RCPT", f"TO:<nobody{i}@acme.example>") for i in range(20)]
    steps += [("RCPT", "TO:<not an address>")]
    steps += [("RCPT", f"TO:<nobody{i}@acme.example>") for i in range(20, 40)]
    try:
        # The error tarpit off: this counts log lines for a flood, not replies.
        async with listening(sqlite_url, org, error_soft_limit=0, error_hard_limit=0) as listener:
            answers = await asyncio.to_thread(session, listener, steps)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    assert sum(code == 550 for code, _ in answers) == 40
    refused = [line for line in written if line.startswith("refused ")]
    assert sum(line.startswith("refused 550") for line in refused) == 5
    assert sum(line.startswith("refused 553") for line in refused) == 1


def test_logged_client_text_cannot_forge_a_line() -> None:
    assert shown("evil\r\nrefused 250 forged") == "evil\\x0d\\x0arefused 250 forged"
    assert shown("\x1b[2J") == "\\x1b[2J"
    assert shown(None) == "-" and len(shown("a" * 5000)) == 200
    assert command_address("FROM:<a@b.example> SIZE=10") == "a@b.example"
    assert command_address("TO: bob@x.example") == "bob@x.example"
    assert command_address(None) is None
