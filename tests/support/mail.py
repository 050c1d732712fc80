"""Messages built for tests: a small RFC 5322 message, and MIME nested deep; and the
shape of a parsed message, to hold two parses equal."""

from __future__ import annotations

from email.message import Message


def compose(
    sender: str,
    subject: str = "Help",
    message_id: str | None = None,
    *,
    to: str = "desk@globex.test",
    headers: dict[str, str] | None = None,
    body: str = "Hello, something is broken.",
) -> bytes:
    """A small RFC 5322 message with CRLF line endings."""
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        "Date: Sat, 28 Nov 2026 10:00:00 +0000",
    ]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode()


def deep_multipart(depth: int) -> bytes:
    head = b"From: deep@customer.example\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    parts = [head]
    for level in range(depth):
        parts.append(
            f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode()
        )
    parts.append(b"Content-Type: text/plain\r\n\r\nbottom\r\n")
    for level in reversed(range(depth)):
        parts.append(f"--b{level}--\r\n".encode())
    return b"".join(parts)


def shape(msg: Message) -> object:
    """Everything of a parsed message that can differ: headers, payload, defects, parts."""
    payload = msg._payload  # type: ignore[attr-defined]  # as parsed, nothing decoded
    inner = [shape(part) for part in payload] if isinstance(payload, list) else payload
    return (
        msg.items(),
        inner,
        [type(defect) for defect in msg.defects],
        msg.preamble,
        msg.epilogue,
        msg.get_content_type(),
    )
