"""Reading mail from disk (simulator/smtp/mailfiles.py, simulator/smtp/sources.py):
single files, folders and mbox files through `load_mail`, and where the envelope
sender comes from. Maildir, line ends, compression and streaming: test_sources.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulator.errors import IntakeSimError
from simulator.smtp.mailfiles import MailFile, envelope_sender
from simulator.smtp.sources import load_mail
from tests.support.mail import compose
from tests.support.samples import CASES

MBOX = (
    b"From bounce+ann@lists.example Sat Nov 28 10:00:00 2026\n"
    b"From: Ann <ann@customer.example>\nSubject: one\n\nbody one\n\n"
    b"From bo@customer.example Sat Nov 28 10:01:00 2026\n"
    b"Return-Path: <returned@customer.example>\nFrom: bo@customer.example\nSubject: two\n\n"
    b"body two\n\n"
    b"From cy@customer.example Sat Nov 28 10:02:00 2026\nSubject: three\n\nbody three\n"
)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- envelope_sender -----------------------------------------------------------------


def test_return_path_comes_first() -> None:
    raw = b"Return-Path: <bounces@lists.example>\r\nFrom: Ann <ann@customer.example>\r\n\r\nx\r\n"
    assert envelope_sender(raw, "mbox@customer.example Sat Nov 28") == "bounces@lists.example"


def test_an_empty_return_path_is_the_null_sender() -> None:
    raw = b"Return-Path: <>\r\nFrom: mailer-daemon@mx.example\r\n\r\nundeliverable\r\n"
    assert envelope_sender(raw) == ""


def test_then_the_mbox_from_line() -> None:
    raw = b"From: Ann <ann@customer.example>\r\n\r\nx\r\n"
    assert (
        envelope_sender(raw, "list@lists.example Sat Nov 28 10:00:00 2026") == "list@lists.example"
    )
    assert envelope_sender(raw, "   ") == ""  # a From_ line with no address: the null sender


def test_then_the_from_header_normalised() -> None:
    raw = b'From: "Ann, Customer" <Ann.Lee@Customer.EXAMPLE>\r\nSubject: hi\r\n\r\nx\r\n'
    assert envelope_sender(raw) == "ann.lee@customer.example"
    assert envelope_sender(b"from: bo@customer.example\n\nx\n") == "bo@customer.example"


def test_headers_in_the_body_do_not_count() -> None:
    raw = (
        b"Subject: no sender\r\n\r\nReturn-Path: <body@evil.example>\r\nFrom: body@evil.example\r\n"
    )
    assert envelope_sender(raw) == ""


# --- load_mail -----------------------------------------------------------------------


def test_one_file_is_read_byte_for_byte(tmp_path: Path) -> None:
    raw = compose("ann@customer.example", "Help", "one@customer.example")
    path = write(tmp_path / "one.eml", raw)
    assert load_mail([path]) == [MailFile(str(path), raw, "ann@customer.example")]


def test_a_file_given_by_name_is_read_whatever_its_suffix(tmp_path: Path) -> None:
    raw = compose("ann@customer.example")
    path = write(tmp_path / "message", raw)
    (mail,) = load_mail([str(path)])  # a str path works as well as a Path
    assert (mail.source, mail.raw) == (str(path), raw)


def test_a_folder_is_read_recursively_in_a_stable_order(tmp_path: Path) -> None:
    write(tmp_path / "b.eml", compose("b@customer.example"))
    write(tmp_path / "a.msg", compose("a@customer.example"))
    write(tmp_path / "sub" / "c.txt", compose("c@customer.example"))
    write(tmp_path / "sub" / "d.EML", compose("d@customer.example"))
    write(tmp_path / "notes.json", b'{"not": "mail"}')
    write(tmp_path / "README", compose("readme@customer.example"))  # mail by its content
    write(tmp_path / "notes.md", b"# Notes\n\nFrom: here on, plain text\n")
    write(tmp_path / "compose.yml", b"services:\n  web:\n    image: x\n")  # fields, no mail
    write(tmp_path / ".git" / "HEAD.eml", compose("hidden@customer.example"))
    found = load_mail([tmp_path])
    names = [Path(m.source).relative_to(tmp_path).as_posix() for m in found]
    assert names == ["README", "a.msg", "b.eml", "sub/c.txt", "sub/d.EML"]
    assert [m.envelope_from for m in found] == [
        "readme@customer.example",
        "a@customer.example",
        "b@customer.example",
        "c@customer.example",
        "d@customer.example",
    ]


def test_paths_are_read_in_the_order_given(tmp_path: Path) -> None:
    first = write(tmp_path / "z.eml", compose("z@customer.example"))
    second = write(tmp_path / "a.eml", compose("a@customer.example"))
    assert [m.source for m in load_mail([first, second])] == [str(first), str(second)]


@pytest.mark.parametrize("name", ["box.mbox", "box.mbx", "box.txt", "sub/box.mbox"])
def test_an_mbox_gives_one_mail_per_message(tmp_path: Path, name: str) -> None:
    """By suffix, or by its first five bytes `From `; in a folder, too."""
    path = write(tmp_path / name, MBOX)
    found = load_mail([path if name != "sub/box.mbox" else tmp_path])
    assert [m.source for m in found] == [f"{path}#1", f"{path}#2", f"{path}#3"]
    assert [m.envelope_from for m in found] == [
        "bounce+ann@lists.example",  # the From_ line, not the From header
        "returned@customer.example",  # Return-Path beats the From_ line
        "cy@customer.example",
    ]
    assert found[0].raw.startswith(b"From: Ann <ann@customer.example>\n")
    assert b"Sat Nov 28" not in found[0].raw  # the From_ line is the mbox's, not the mail's
    assert found[2].raw.endswith(b"body three\n")


def test_a_missing_path_is_one_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "there.eml", compose("a@customer.example"))
    gone = re.escape(f"no such file or folder: {tmp_path / 'gone.eml'}")
    with pytest.raises(IntakeSimError, match=gone):
        load_mail([tmp_path / "there.eml", tmp_path / "gone.eml"])


def test_an_empty_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    write(tmp_path / "notes.json", b'{"not": "mail"}')
    with pytest.raises(
        IntakeSimError, match=f"no email in this folder .*: {re.escape(str(tmp_path))}$"
    ):
        load_mail([tmp_path])


def test_a_folded_from_header_still_gives_the_envelope_sender() -> None:
    raw = (
        b'From: "Ann Lee, Customer Services"\r\n <ann@customer.example>\r\nSubject: x\r\n\r\nx\r\n'
    )
    assert envelope_sender(raw) == "ann@customer.example"
    folded_path = b"Return-Path:\n <bounces@lists.example>\nFrom: a@b.example\n\nx\n"
    assert envelope_sender(folded_path) == "bounces@lists.example"


def test_a_takeout_from_line_is_no_address() -> None:
    """Google Takeout's From_ lines carry a message number: the From header counts."""
    raw = b"From: Ann <ann@customer.example>\n\nx\n"
    assert envelope_sender(raw, "1781234567890123456@xxx Sat Nov 28 10:00:00 +0000 2026") == (
        "ann@customer.example"
    )


def test_the_sample_emails_all_load_with_an_envelope() -> None:
    found = load_mail(CASES)
    assert [m.source for m in found] == [str(c) for c in CASES]
    assert all(m.raw == Path(m.source).read_bytes() for m in found)
    assert sum(m.envelope_from == "" for m in found) >= 1  # at least one null-sender bounce
