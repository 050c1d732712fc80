"""The whole story in one go, over the real protocol on a free loopback port.

A fresh database, the sample org and the sample emails; the listener and the
sending client run in one process (the client in a worker thread, so the
listener's event loop stays free), and the result is read back from the store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from simulator.org import Org
from simulator.pipeline.batch import prepare
from simulator.reports import rows as reports
from simulator.service import intake_service
from simulator.smtp.mailfiles import MailFile, SendResult, SmtpSender, load_mail
from simulator.smtp.relay import Relay
from simulator.smtp.server import ListenerOptions
from simulator.store.db import Store

Progress = Callable[[SendResult], None]
DRAIN_SECONDS = 30.0


@dataclass
class DemoResult:
    listener: str
    sent: list[SendResult]
    deliveries: list[dict[str, Any]]
    issues: list[dict[str, Any]]
    users: list[dict[str, Any]]
    report: dict[str, Any]
    outbox: list[dict[str, Any]]


def sample_emails_dir() -> Path:
    return Path(str(resources.files("simulator.samples") / "emails"))


def sample_mail() -> list[MailFile]:
    return load_mail([sample_emails_dir()])


def expected_outcome(mail: MailFile) -> dict[str, Any] | None:
    """The outcome a sample email is expected to get, from the JSON file beside it."""
    path = Path(mail.source)
    expected = path.with_name(path.stem + ".expected.json")
    return json.loads(expected.read_text(encoding="utf-8")) if expected.exists() else None


async def _send_all(
    host: str, port: int, mail: list[MailFile], recipient: str, progress: Progress
) -> list[SendResult]:
    def send_blocking() -> list[SendResult]:
        results = []
        with SmtpSender(host, port) as sender:
            for item in mail:
                result = sender.send(item, [recipient])
                progress(result)
                results.append(result)
        return results

    return await asyncio.to_thread(send_blocking)


def run_demo(
    store: Store,
    org: Org,
    mail: list[MailFile],
    progress: Progress,
    relay: Relay | None = None,
) -> DemoResult:
    prepare(store, org)

    async def scenario() -> tuple[str, list[SendResult]]:
        async with intake_service(store, org, ListenerOptions(port=0), relay=relay) as service:
            sent = await _send_all(
                service.host, service.port, mail, org.intake_addresses[0], progress
            )
            if service.outbox is not None:
                # Give every automatic email its first try before the listener stops.
                await service.outbox.drain(DRAIN_SECONDS)
            return f"smtp://{service.host}:{service.port}", sent

    listener, sent = asyncio.run(scenario())
    with store.read() as session:
        return DemoResult(
            listener=listener,
            sent=sent,
            deliveries=reports.messages(session),
            issues=reports.issues(session),
            users=reports.users(session),
            report=reports.report(session, org),
            outbox=reports.outbox(session),
        )
