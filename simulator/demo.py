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
from simulator.reports import rows, summary
from simulator.service import intake_service
from simulator.smtp.client import SendResult, send_all
from simulator.smtp.mailfiles import MailFile
from simulator.smtp.relay import Relay
from simulator.smtp.server import ListenerOptions
from simulator.smtp.sources import load_mail
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

    def as_dict(self) -> dict[str, Any]:
        """The whole result as `demo --format json` prints it."""
        return {
            "listener": self.listener,
            "messages": self.deliveries,
            "issues": self.issues,
            "users": self.users,
            "report": self.report,
            "outbox": self.outbox,
        }

    def outcomes(self, mail: list[MailFile]) -> list[dict[str, Any]]:
        """One row per sample email: its reply, outcome and whether it is as expected."""
        found = []
        for item, sent, delivery in zip(mail, self.sent, self.deliveries, strict=False):
            expected = expected_outcome(item) or {}
            outcome = delivery["outcome"] + (f"/{delivery['reason']}" if delivery["reason"] else "")
            matches = (
                expected.get("outcome") in (None, delivery["outcome"])
                and expected.get("reason") == delivery["reason"]
            )
            found.append(
                {
                    "email": Path(item.source).stem,
                    "reply": sent.code,
                    "outcome": outcome,
                    "issue": delivery["issue"],
                    "sender": delivery["sender"],
                    "as expected": matches,
                }
            )
        return found

    def waiting(self) -> int:
        """Automatic emails still pending in the outbox."""
        return sum(row["status"] == "pending" for row in self.outbox)


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
    return await asyncio.to_thread(send_all, host, port, mail, [recipient], progress)


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
            deliveries=rows.messages(session),
            issues=rows.issues(session),
            users=rows.users(session),
            report=summary.report(session, org),
            outbox=rows.outbox(session),
        )
