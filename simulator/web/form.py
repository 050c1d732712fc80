"""The customer web form: validation, the message it becomes, CSRF tokens, rate limit.

A form submission is turned into a real RFC 5322 message and handed to the
same intake pipeline as mail, so that parsing, users, issues and seats follow
one set of rules. The message is built with the stdlib `email` package, whose
SMTP policy refuses CR/LF in header values; the validation below refuses them
first, so that a hostile field is an error on the form, never an extra header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from simulator.org import Org
from simulator.pipeline.parse import mailbox_key, normalise_address

FIELDS = ("name", "email", "subject", "description")
MAX_LENGTH = {"name": 200, "email": 254, "subject": 200, "description": 10_000}
# One line: any C0/C1 control (CR and LF included) or a Unicode line break.
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Text: like one line, but newlines and tabs are allowed.
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# RFC 5322 dot-atom local part and a dotted host name: what a portal account can be.
_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


@dataclass(frozen=True)
class FormInput:
    name: str
    email: str  # normalised: lower-case, IDNA domain
    subject: str
    description: str


def read_form(fields: Mapping[str, str], org: Org) -> tuple[FormInput, dict[str, str]]:
    """The trimmed values and, per field, what is wrong with it (empty when all is well)."""
    values = {name: fields.get(name, "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    for name in FIELDS:
        value = values[name]
        if not value:
            errors[name] = "Required."
        elif len(value) > MAX_LENGTH[name]:
            errors[name] = f"At most {MAX_LENGTH[name]:,} characters, not {len(value):,}."
        elif (_NOT_TEXT if name == "description" else _NOT_ONE_LINE).search(value):
            errors[name] = (
                "Contains control characters."
                if name == "description"
                else "Must be one line of text."
            )
    address = values["email"]
    if "email" not in errors:
        normalised = _valid_address(address)
        if normalised is None:
            errors["email"] = "Not an email address (name@example.com)."
        elif org.is_intake_address(normalised):
            errors["email"] = "That is our own intake address; give yours."
        else:
            address = normalised
    form = FormInput(values["name"], address, values["subject"], values["description"])
    return form, errors


def _valid_address(value: str) -> str | None:
    address = normalise_address(value)
    if address is None or value != value.strip("<> "):
        return None
    local, _, domain = address.partition("@")
    if len(local) > 64 or not _LOCAL.match(local) or not _DOMAIN.match(domain):
        return None
    return address


def build_message(form: FormInput, org: Org, at: datetime) -> bytes:
    """The RFC 5322 message a submission becomes, addressed to the org's intake address.

    Its Message-ID lies outside the org's own Message-ID domain, so the loop
    guard (our own mail coming back) never mistakes it for outgoing mail.
    """
    message = EmailMessage(policy=policy.SMTP)
    # Address quotes the display name itself (commas, quotes, non-ASCII as RFC 2047).
    message["From"] = Address(display_name=form.name, addr_spec=form.email)
    message["To"] = org.intake_addresses[0]
    message["Subject"] = form.subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = make_msgid("webform", domain=f"form.{org.message_id_domain}")
    message["X-Intake-Sim-Form"] = "customer web form"
    message.set_content(form.description)
    return message.as_bytes()


def same_origin(origin: str | None, scheme: str, host: str | None) -> bool:
    """Whether a POST's `Origin` is this server's own (or absent, as from a script).

    A browser always sends Origin on a cross-site POST, so a page elsewhere that
    tries to submit the form is refused even before its CSRF token is looked at;
    `null` (a sandboxed frame, a data: URL) is refused too.
    """
    if origin is None:
        return True
    return bool(host) and origin.strip().lower() == f"{scheme}://{host}".lower()


def limit_key(address: str) -> str:
    """What the per-address limit counts: the mailbox, so `+tags` share one allowance."""
    return mailbox_key(address)


class CsrfTokens:
    """Double-submit tokens: the same value in a cookie and a form field, signed by us.

    The secret lives as long as the process, so a restart expires open forms.
    A token carries its issue time and is refused after `max_age` seconds.
    """

    def __init__(self, secret: bytes | None = None, max_age: float = 24 * 3600) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.max_age = max_age

    def issue(self, now: float | None = None) -> str:
        stamp = str(int(time.time() if now is None else now))
        body = f"{stamp}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._sign(body)}"

    def valid(self, cookie: str | None, field: str | None, now: float | None = None) -> bool:
        if not cookie or not field or not hmac.compare_digest(cookie, field):
            return False
        body, _, signature = cookie.rpartition(".")
        stamp = body.partition(".")[0]
        if not stamp.isdigit() or not hmac.compare_digest(signature, self._sign(body)):
            return False
        age = (time.time() if now is None else now) - int(stamp)
        return 0 <= age <= self.max_age

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()


class RateLimiter:
    """At most `limit` events per key in a sliding window (0 = no limit)."""

    def __init__(
        self,
        limit: int,
        window_seconds: float = 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Record one event for `key` and say whether it is within the limit."""
        if self.limit <= 0:
            return True
        now = self._clock()
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        if len(self._seen) > 10_000:  # forget idle keys so memory stays bounded
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.window}
        return True
