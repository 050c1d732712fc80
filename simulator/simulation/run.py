"""Running synthetic traffic through intake: in-process, or over SMTP.

`direct` hands the built messages to the pipeline's `ingest`, one committed
transaction per batch as the listener's group commit, with the simulated
receive time. `smtp` sends them to a
listener from several client threads. Both end with the same report when the
listener takes the receive time from the Date header (`serve
--use-date-header`, and always for the listener `simulate` starts itself).

Over several connections, a reply is only sent once the first message of its
conversation has been acknowledged, so threading does not depend on which
client thread happens to be faster.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simulator.domain import Submission
from simulator.org import Org
from simulator.pipeline.batch import ingest, prepare
from simulator.reports.summary import data_end, report
from simulator.service import intake_service
from simulator.simulation.traffic import PlannedMail, TrafficParams, build_message, plan
from simulator.smtp.client import SmtpClient
from simulator.smtp.mailfiles import MailFile
from simulator.smtp.server import ListenerOptions
from simulator.store.db import Store

Advance = Callable[[int], None]


@dataclass
class SimulationResult:
    transport: str
    sent: int
    refused: int
    report: dict[str, Any]


def _planned(params: TrafficParams, org: Org) -> Iterator[tuple[PlannedMail, MailFile]]:
    for mail in plan(params, org):
        raw, envelope_from = build_message(params, org, mail)
        yield mail, MailFile(f"simulated#{mail.index}", raw, envelope_from)


def run_direct(store: Store, org: Org, params: TrafficParams, advance: Advance) -> None:
    """The traffic through the real pipeline in-process, in batches of one transaction."""
    prepare(store, org, params.start)
    ingest(store, org, _submissions(params, org), on_batch=lambda done: advance(len(done)))


def _submissions(params: TrafficParams, org: Org) -> Iterator[Submission]:
    """The planned traffic as submissions, each received at its simulated time."""
    recipients = [org.intake_addresses[0]]
    for mail, file in _planned(params, org):
        received_at = datetime.fromtimestamp(mail.at, UTC)
        yield Submission(file.raw, file.envelope_from, recipients, received_at)


class _Acknowledged:
    """Which messages have been answered; waits until all up to an index have."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._done: set[int] = set()
        self._prefix = -1  # every index up to this one is done

    def wait_through(self, index: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._prefix >= index)

    def finish(self, index: int) -> None:
        with self._cond:
            self._done.add(index)
            while self._prefix + 1 in self._done:
                self._prefix += 1
                self._done.discard(self._prefix)
            self._cond.notify_all()


def send_smtp(
    host: str, port: int, org: Org, params: TrafficParams, concurrency: int, advance: Advance
) -> tuple[int, int]:
    """Send the traffic over `concurrency` connections; returns (sent, refused)."""
    source = _planned(params, org)
    take = threading.Lock()
    acknowledged = _Acknowledged()
    counts = {"sent": 0, "refused": 0}
    failures: list[BaseException] = []
    recipients = [org.intake_addresses[0]]

    last_new = [-1]  # the index of the latest mail that opens an issue

    def client() -> None:
        with SmtpClient(host, port) as sender:
            while True:
                with take:
                    item = next(source, None)
                    if item is not None and item[0].kind == "new":
                        before, last_new[0] = last_new[0], item[0].index
                if item is None:
                    return
                mail, file = item
                try:
                    if mail.kind == "new":
                        # Issues are numbered in commit order: opening them in plan order
                        # keeps each `[Issue #N]` reply naming the issue the plan means.
                        acknowledged.wait_through(before)
                    elif mail.root != mail.index:
                        acknowledged.wait_through(mail.root)
                    result = sender.send(file, recipients)
                finally:
                    acknowledged.finish(mail.index)
                with take:
                    counts["sent"] += 1
                    counts["refused"] += not result.accepted
                advance(1)

    def guarded() -> None:
        try:
            client()
        except BaseException as exc:  # surfaced after join: a thread cannot raise to us
            failures.append(exc)

    threads = [threading.Thread(target=guarded, daemon=True) for _ in range(max(1, concurrency))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return counts["sent"], counts["refused"]


def run_own_listener(
    store: Store, org: Org, params: TrafficParams, concurrency: int, advance: Advance
) -> tuple[int, int]:
    """A listener on a free loopback port over `store`, fed over SMTP."""
    prepare(store, org, params.start)

    async def scenario() -> tuple[int, int]:
        options = ListenerOptions(port=0, use_date_header=True)
        async with intake_service(store, org, options) as service:
            return await asyncio.to_thread(
                send_smtp, service.host, service.port, org, params, concurrency, advance
            )

    return asyncio.run(scenario())


def final_report(store: Store, org: Org, params: TrafficParams) -> dict[str, Any]:
    """The report as of the end of the span, or of the data if that is later."""
    with store.read() as session:
        end = data_end(session)
        as_of = max(params.end, end) if end else params.end
        return report(session, org, as_of)
