"""`intake-sim fetch` against a real Dovecot: IMAPS, IMAP with STARTTLS and POP3S; the
checkpoint (a second run fetches 0, new mail fetches only it, a new UIDVALIDITY
refetches and dedupes); a wrong password and a certificate not trusted are one
error line; the mailbox is unchanged afterwards; and fetched history gives the
same monthly figures as `ingest --use-date-header` of a Maildir copy."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.org import load_org
from simulator.pipeline.intake import DeliveryResult
from simulator.smtp.fetch import FETCH_BATCH, Account, FetchError, MailProtocol
from simulator.smtp.fetch import fetch as fetch_mail
from simulator.store.db import open_store
from tests.support.dovecot import (
    PASSWORD,
    SKIP,
    USER,
    Dovecot,
    available,
    free_port,
    running_dovecot,
    snapshot,
)
from tests.support.mail import compose
from tests.support.mailboxes import dated_messages, write_maildir
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.skipif(not available(), reason=SKIP)
runner = CliRunner()
SECRET_ENV = {"INTAKE_SIM_FETCH_PASSWORD": PASSWORD}


def mailbox() -> dict[str, bytes]:
    """Six months of mail: four in the inbox (two already read), two in `.Archive`."""
    found = {}
    for index, raw in enumerate(dated_messages()):
        folder = "" if index < 4 else ".Archive/"
        sub, flags = ("cur", ":2,S") if index % 2 else ("new", "")
        found[f"{folder}{sub}/{1767225600 + index}.M{index}P1.host{flags}"] = raw
    return found


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot(mailbox()) as server:
        yield server


def fetch(server: Dovecot, db: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    args = ["fetch", "127.0.0.1", "--user", USER, "--db", db, "--format", "json", *extra]
    return runner.invoke(app, args, env=SECRET_ENV if env is None else env)


def fetched(server: Dovecot, db: str, *extra: str) -> dict[str, int]:
    result = fetch(server, db, *extra)
    assert result.exit_code == 0, result.output + server.log()[-2000:]
    return {row["outcome"]: row["deliveries"] for row in json.loads(result.stdout)}


def imaps(server: Dovecot) -> list[str]:
    return ["--port", str(server.imaps), "--cafile", str(server.cert)]


def pop3s(server: Dovecot) -> list[str]:
    return ["--protocol", "pop3", "--port", str(server.pop3s), "--cafile", str(server.cert)]


def messages(db: str) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["messages", "--db", db, "--format", "json"])
    return json.loads(result.stdout)


def test_imaps_fetches_once_then_only_new_mail_and_leaves_the_mailbox_as_it_was(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'imap.db'}"
    before = snapshot(dovecot.maildir)
    assert fetched(dovecot, db, *imaps(dovecot), "--all-folders") == {"created_issue": 6}
    stored = messages(db)
    # The receive time is the server's INTERNALDATE: one message a month, January on.
    assert sorted(m["received_at"][:7] for m in stored) == [f"2026-0{n}" for n in range(1, 7)]
    assert {m["channel"] for m in stored} == {"fetch"}
    assert fetched(dovecot, db, *imaps(dovecot), "--all-folders") == {}
    assert snapshot(dovecot.maildir) == before  # names carry the flags: none was set

    new = dated_messages(7)[6].replace(b"flo", b"gus").replace(b"m7.", b"m7b.")
    dovecot.deliver(new, "new/1767999999.M7P1.host")
    try:
        assert fetched(dovecot, db, *imaps(dovecot), "--all-folders") == {"created_issue": 1}
    finally:
        (dovecot.maildir / "new" / "1767999999.M7P1.host").unlink()
        dovecot.forget_uids()


def test_one_folder_and_starttls(dovecot: Dovecot, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'starttls.db'}"
    extra = ["--port", str(dovecot.imap), "--security", "starttls", "--cafile", str(dovecot.cert)]
    assert fetched(dovecot, db, *extra, "--folder", "Archive") == {"created_issue": 2}
    assert fetched(dovecot, db, *extra) == {"created_issue": 4}  # INBOX, the default


def test_a_new_uidvalidity_refetches_and_dedupes(dovecot: Dovecot, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'validity.db'}"
    assert fetched(dovecot, db, *imaps(dovecot)) == {"created_issue": 4}
    dovecot.forget_uids()
    assert fetched(dovecot, db, *imaps(dovecot)) == {"duplicate": 4}
    assert fetched(dovecot, db, *imaps(dovecot)) == {}


def test_pop3s_fetches_once_and_sets_no_flag(dovecot: Dovecot, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'pop3.db'}"
    before = snapshot(dovecot.maildir)
    assert fetched(dovecot, db, *pop3s(dovecot)) == {"created_issue": 4}
    assert fetched(dovecot, db, *pop3s(dovecot)) == {}

    def messages_and_flags(files: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
        # Dovecot's POP3 server moves new/ mail to cur/ on login; the flags must stay none.
        return {
            name.split("/")[-1].split(":")[0]: (name.partition(":2,")[2], raw)
            for name, raw in files.items()
        }

    assert messages_and_flags(snapshot(dovecot.maildir)) == messages_and_flags(before)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_wrong_password_is_one_line_without_the_password(
    dovecot: Dovecot, tmp_path: Path, protocol: str
) -> None:
    extra = imaps(dovecot) if protocol == "imap" else pop3s(dovecot)
    wrong = {"INTAKE_SIM_FETCH_PASSWORD": "not-the-password"}
    result = fetch(dovecot, f"sqlite:///{tmp_path / 'x.db'}", *extra, env=wrong)
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"Error: 127.0.0.1:{extra[extra.index('--port') + 1]} refused the login of {USER}"
    )
    assert "not-the-password" not in result.output


def test_a_password_file_works_and_none_at_all_is_an_error(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(PASSWORD + "\n")
    db = f"sqlite:///{tmp_path / 'file.db'}"
    result = fetch(dovecot, db, *imaps(dovecot), "--password-file", str(secret), env={})
    assert result.exit_code == 0, result.output
    missing = fetch(dovecot, db, *imaps(dovecot), env={"INTAKE_SIM_FETCH_PASSWORD": ""})
    assert missing.exit_code == 1
    assert "no password: set INTAKE_SIM_FETCH_PASSWORD" in missing.stderr


def test_a_certificate_not_trusted_is_refused_unless_insecure(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'cert.db'}"
    refused = fetch(dovecot, db, "--port", str(dovecot.imaps))
    assert refused.exit_code == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "CERTIFICATE_VERIFY_FAILED" in lines[0], lines
    assert fetched(dovecot, db, "--port", str(dovecot.imaps), "--insecure") == {"created_issue": 4}


def many(count: int) -> dict[str, bytes]:
    return {
        f"new/{1767225600 + n}.M{n}P1.host": compose(
            f"c{n}@customer.example", f"Help {n}", f"r{n}@x"
        )
        for n in range(count)
    }


@contextmanager
def switchable_proxy(port: int) -> Iterator[tuple[int, Callable[[], None], Callable[[], None]]]:
    """A TCP forwarder to `port` on its own event loop thread: (its port, cut, restore)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = TcpProxy(free_port(), ("127.0.0.1", port))

    def run(step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        asyncio.run_coroutine_threadsafe(step(), loop).result(10)

    run(proxy.start)
    try:
        yield proxy.port, lambda: run(proxy.stop), lambda: run(proxy.start)
    finally:
        run(proxy.stop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_session_cut_mid_fetch_resumes_with_nothing_doubled(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cut.db'}"
    org = load_org(None)
    with running_dovecot(many(120)) as server, switchable_proxy(server.imaps) as proxied:
        port, cut, restore = proxied
        account = Account(MailProtocol.IMAP, "127.0.0.1", USER, PASSWORD, port, cafile=server.cert)
        store = open_store(url)
        batches: list[int] = []

        def cut_after_first(results: Sequence[DeliveryResult]) -> None:
            batches.append(len(results))
            if len(batches) == 1:
                cut()

        with pytest.raises(FetchError, match="broke off"):
            fetch_mail(store, org, account, on_batch=cut_after_first)
        assert batches == [FETCH_BATCH]
        restore()
        assert fetch_mail(store, org, account) == 120 - FETCH_BATCH
        store.dispose()
    stored = messages(url)
    assert len(stored) == 120
    assert {m["outcome"] for m in stored} == {"created_issue"}


def test_fetched_history_reports_as_the_same_mail_ingested(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    fetched_db = f"sqlite:///{tmp_path / 'fetched.db'}"
    ingested_db = f"sqlite:///{tmp_path / 'ingested.db'}"
    fetched(dovecot, fetched_db, *imaps(dovecot), "--all-folders")
    copy = write_maildir(tmp_path / "Maildir", dated_messages())
    result = runner.invoke(
        app, ["ingest", str(copy), "--db", ingested_db, "--use-date-header", "--format", "json"]
    )
    assert result.exit_code == 0, result.output

    def by_month(db: str) -> Any:
        shown = runner.invoke(app, ["report", "--db", db, "--by", "month", "--format", "json"])
        return json.loads(shown.stdout)

    months = by_month(fetched_db)
    assert [m["month"] for m in months] == [f"2026-0{n}" for n in range(1, 7)]
    assert all(m["support"]["seats"] == 3 for m in months)  # the sample org's three agents
    team = [m["team"]["seats"] for m in months]
    assert team == sorted(team) and team[-1] - team[0] == 5  # one new customer a month
    assert months == by_month(ingested_db)
    shutil.rmtree(copy)
