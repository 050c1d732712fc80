"""Generated hostile mail: headers, MIME trees, charsets and raw byte damage.

Everything is drawn from one `random.Random`, so a seed repeats a run; the
property-based tests drive the same generator with Hypothesis' randoms, so the
live `fuzz` command and the test suite explore the same space.
"""

from __future__ import annotations

import base64
import random

CHARSETS = (
    "utf-8",
    "us-ascii",
    "iso-8859-1",
    "iso-8859-15",
    "windows-1252",
    "koi8-r",
    "shift_jis",
    "euc-kr",
    "gb2312",
    "big5",
    "utf-16",
    "utf-7",
    "idna",
    "x-unknown",
    "",
    "utf-8\x00",
)
TEXTS = (
    "Printer on fire",
    "Re: Re: Fwd: help",
    "Grüße aus Köln",
    "Привет",
    "日本語の件名",
    "🔥🔥",
    "=?",
    "?=",
    "\x1b[31mred\x1b[0m",
    "a\x00b",
    "line\r\nInjected: header",
    "  ",
    "",
    "[Issue #1] still broken",
    "x" * 200,
    "\u202eevil\u202c",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
)
ADDRESSES = (
    "jo@customer.example",
    "Jo <jo@customer.example>",
    '"Doe, J" <j@customer.example>',
    "MAILER-DAEMON@mx.example",
    "noreply@vendor.example",
    "eli@acme.example",
    "ava@acme.example",
    "<>",
    "not an address",
    "a@b@c",
    "user@xn--bcher-kva.example",
    "üser@bücher.example",
    "",
    "@",
    "<@>",
    "support@acme.example",
    "first@customer.example, second@customer.example",
)
# MAIL FROM and RCPT TO as a hostile client sends them. Lone surrogates stand for
# bytes that are not UTF-8 (the client sends them back as those bytes); no CR or LF,
# which would end the command line and start another.
ENVELOPE_ADDRESSES = (
    "fuzz@customer.example",
    "",
    "MAILER-DAEMON@mx.example",
    "eli@acme.example",
    "\udcff@evil.example",
    "fuzz@\udcfe\udcffevil.example",
    "a\x01b@customer.example",
    "tab\there@customer.example",
    "üser@bücher.example",
    "a@b@c",
    "@",
    "x" * 300 + "@customer.example",
    "user@" + "d" * 70 + ".example",
    '"quoted local"@customer.example',
    "user@[127.0.0.1]",
    "support@acme.example\x00",
    "SUPPORT@ACME.EXAMPLE",
)
NOISE = (
    ("Auto-Submitted", "auto-replied"),
    ("Auto-Submitted", "no"),
    ("Precedence", "bulk"),
    ("List-Id", "<list.example>"),
    ("X-Autoreply", "yes"),
    ("X-Loop", "x"),
    ("X-Failed-Recipients", "a@b.example"),
    ("X-Auto-Response-Suppress", "OOF"),
)
LEAF_TYPES = (
    "text/plain",
    "text/html",
    "application/octet-stream",
    "image/png",
    "message/delivery-status",
    "text/calendar",
    "application/pdf",
    "text/x-unknown",
)
MULTI_TYPES = (
    "multipart/mixed",
    "multipart/alternative",
    "multipart/report",
    "multipart/related",
    "multipart/signed",
)
ENCODINGS = ("7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "")


class MailFuzzer:
    """`message()` returns one generated message; ids repeat now and then, on purpose."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ids: list[str] = []
        self.count = 0

    def message(self) -> bytes:
        self.count += 1
        kind = self.rng.random()
        if kind < 0.1:
            return self.rng.randbytes(self.rng.randint(0, 600))
        raw = self._headers() + self._body(depth=0)  # the body opens with its own fields
        return self._damage(raw) if kind < 0.3 else raw

    def envelope(self, intake_address: str) -> tuple[str, list[str]]:
        """A MAIL FROM address and RCPT TO list; the intake address is always among
        the recipients, so a refused stranger never ends the transaction alone."""
        rng = self.rng
        sender = self._envelope_address()
        recipients = [self._envelope_address() for _ in range(rng.choice((0, 0, 1, 2)))]
        recipients.insert(rng.randint(0, len(recipients)), intake_address)
        return sender, recipients

    def _envelope_address(self) -> str:
        chance = self.rng.random()
        if chance < 0.75:  # mostly plain, so that most messages still get through
            return self.rng.choice(ENVELOPE_ADDRESSES[:4])
        if chance < 0.8:  # random bytes: a local part that is anything at all
            junk = bytes(b for b in self.rng.randbytes(self.rng.randint(1, 12)) if b not in b"\r\n")
            return junk.decode("utf-8", "surrogateescape") + "@fuzz.example"
        return self.rng.choice(ENVELOPE_ADDRESSES)

    def _headers(self) -> bytes:
        rng = self.rng
        fields: list[tuple[str, str]] = []
        if rng.random() < 0.9:
            fields.append(("From", self._sender()))
        fields.append(("To", rng.choice(ADDRESSES)))
        if rng.random() < 0.9:
            fields.append(("Subject", self._encoded(rng.choice(TEXTS))))
        if rng.random() < 0.85:
            fields.append(("Message-ID", self._message_id()))
        if self.ids and rng.random() < 0.3:
            fields.append(("In-Reply-To", f"<{rng.choice(self.ids)}>"))
        if rng.random() < 0.2:
            fields.append(rng.choice(NOISE))
        if rng.random() < 0.3:
            fields.append(
                (
                    "Date",
                    rng.choice(
                        (
                            "Sat, 28 Nov 2026 10:00:00 +0000",
                            "yesterday",
                            "Mon, 32 Foo 99999 99:99:99 +9999",
                        )
                    ),
                )
            )
        fields += [
            (f"X-Fuzz-{n}", self._encoded(rng.choice(TEXTS))) for n in range(rng.randint(0, 5))
        ]
        rng.shuffle(fields)
        return b"".join(
            f"{name}: {value}\r\n".encode("utf-8", "surrogateescape") for name, value in fields
        )

    def _sender(self) -> str:
        address = self.rng.choice(ADDRESSES)
        if self.rng.random() < 0.7 or "<" in address:
            return address
        return f"{self._encoded(self.rng.choice(TEXTS))} <{address}>"

    def _message_id(self) -> str:
        if self.ids and self.rng.random() < 0.05:
            return f"<{self.rng.choice(self.ids)}>"  # a resend: must become `duplicate`
        value = f"fuzz-{self.count}-{self.rng.getrandbits(40):x}@fuzz.test"
        if self.rng.random() < 0.02:
            value = "long" + "x" * 400 + "@fuzz.test"
        self.ids.append(value)
        return f"<{value}>"

    def _encoded(self, text: str) -> str:
        """Plain, or an RFC 2047 encoded word in a random (maybe bogus) charset."""
        if self.rng.random() < 0.5:
            return text.replace("\r", "").replace("\n", "")
        charset = self.rng.choice(CHARSETS)
        data = _encode(text, charset)
        if self.rng.random() < 0.5:
            return f"=?{charset}?b?{base64.b64encode(data).decode()}?="
        return f"=?{charset}?q?{''.join(f'={b:02X}' for b in data)}?="

    def _body(self, depth: int) -> bytes:
        rng = self.rng
        if depth < 8 and rng.random() < (0.45 if depth == 0 else 0.3):
            return self._multipart(depth)
        kind, charset = rng.choice(LEAF_TYPES), rng.choice(CHARSETS)
        encoding = rng.choice(ENCODINGS)
        text = _encode(rng.choice(TEXTS), charset)
        payload = base64.encodebytes(text) if encoding == "base64" and rng.random() < 0.8 else text
        head = f'Content-Type: {kind}; charset="{charset}"\r\n'
        if encoding:
            head += f"Content-Transfer-Encoding: {encoding}\r\n"
        if rng.random() < 0.2:
            head += f'Content-Disposition: attachment; filename="{rng.choice(TEXTS)[:40]}"\r\n'
        return head.encode("utf-8", "surrogateescape") + b"\r\n" + payload + b"\r\n"

    def _multipart(self, depth: int) -> bytes:
        rng = self.rng
        boundary = f"b{depth}-{rng.getrandbits(24):x}"
        declared = boundary if rng.random() < 0.9 else ""
        head = f'Content-Type: {rng.choice(MULTI_TYPES)}; boundary="{declared}"\r\n\r\n'
        parts = [self._body(depth + 1) for _ in range(rng.randint(0, 4))]
        body = b"".join(f"--{boundary}\r\n".encode() + part for part in parts)
        closing = f"--{boundary}--\r\n".encode() if rng.random() < 0.8 else b""
        return head.encode() + body + closing

    def _damage(self, raw: bytes) -> bytes:
        """Flip bytes, insert NULs and bare LFs, or cut the message short."""
        data = bytearray(raw)
        for _ in range(self.rng.randint(1, 8)):
            if not data:
                break
            at = self.rng.randrange(len(data))
            choice = self.rng.random()
            if choice < 0.4:
                data[at] = self.rng.randrange(256)
            elif choice < 0.7:
                data[at:at] = self.rng.choice((b"\x00", b"\n", b"\r", b"\xff\xfe", b"=?"))
            else:
                del data[at:]
        return bytes(data)


def _encode(text: str, charset: str) -> bytes:
    """The text in that charset; a bogus or picky label gets UTF-8 bytes instead."""
    try:
        return text.encode(charset, "replace")
    except (LookupError, UnicodeError, ValueError):
        return text.encode("utf-8", "replace")
