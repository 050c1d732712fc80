"""A real SMTP catcher for tests: our own port-0 listener with a handler that keeps mail.

It stands in for a relay (Mailpit, a smarthost). With `respond`, it also plays
the people behind the addresses: each caught message can trigger an answer,
sent over SMTP back into the listener under test (an auto-responder).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from simulator.smtp.server import ListenerOptions, smtp_listener


@dataclass(frozen=True)
class Caught:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


Responder = Callable[[Caught], Awaitable[None]]


class CatcherHandler:
    def __init__(self, respond: Responder | None = None) -> None:
        self.caught: list[Caught] = []
        self.respond = respond
        self.responses: set[asyncio.Task[None]] = set()
        self._arrived = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        caught = Caught(envelope.mail_from or "", tuple(envelope.rcpt_tos), bytes(envelope.content))
        self.caught.append(caught)
        self._arrived.set()
        if self.respond is not None:
            task = asyncio.create_task(self.respond(caught))
            self.responses.add(task)
            task.add_done_callback(self.responses.discard)
        return "250 2.0.0 caught"

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Caught]:
        """Wait until at least `count` messages were caught; fails after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while len(self.caught) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return list(self.caught)


@asynccontextmanager
async def catcher(
    handler: CatcherHandler, port: int = 0, smtputf8: bool = True
) -> AsyncIterator[tuple[str, int]]:
    async with smtp_listener(handler, ListenerOptions(port=port, smtputf8=smtputf8)) as address:
        yield address
