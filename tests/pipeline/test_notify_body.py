"""The body of automatic mail is written as `set_content` and `as_bytes` would write it."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, Policy

import pytest

from simulator.pipeline.notify import text_part

BODIES = [
    "Hello,\n\nwe have received your message.\n",
    "no final newline",
    "crlf\r\nlines\r\nand a bare\rcr\n",
    "x" * 78 + "\n",
    "x" * 79 + "\n",
    "über\n",
    "form\x0bfeed\x1cand more\n",
    "",
    "long ascii " * 20 + "\n" + "line\n" * 12,
    "ünïcödé " * 30 + "\n",
    "\u2028 sep\x00nul\n",
]


@pytest.mark.parametrize("policy", [SMTP, SMTPUTF8])
@pytest.mark.parametrize("body", BODIES)
def test_same_bytes_as_set_content(policy: Policy, body: str) -> None:
    expected = EmailMessage(policy=policy)
    expected.set_content(body)
    # A message with nothing but the text: its three headers, the blank line, the payload.
    assert text_part(policy, body) == expected.as_bytes()
