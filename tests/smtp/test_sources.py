"""The one reader of mail sources (simulator/smtp/sources.py): the same mail as a
Maildir++, mbox in three line-end styles, compressed mbox and an .eml folder
reads as the same messages; mbox separators and escapes; streaming."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import pytest

from simulator.smtp.sources import NoMail, load_mail, read_mail, split_mbox
from tests.support.mailboxes import dated_messages, mbox_bytes, write_all_sources


def lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def test_every_kind_of_source_reads_as_the_same_messages(tmp_path: Path) -> None:
    messages = dated_messages()
    sources = write_all_sources(tmp_path, messages)
    expected = sorted(
        (raw, re.search(rb"Return-Path: <([^>]+)>", raw).group(1).decode())  # type: ignore[union-attr]
        for raw in messages
    )
    for name, path in sources.items():
        found = sorted((lf(m.raw), m.envelope_from) for m in load_mail([path]))
        assert found == expected, name


def test_maildir_is_read_in_arrival_order_with_its_sub_folders(tmp_path: Path) -> None:
    root = write_all_sources(tmp_path, dated_messages())["maildir"]
    names = [Path(m.source).relative_to(root).as_posix() for m in load_mail([root])]
    assert [n.split("/")[-2] for n in names] == ["cur", "new", "cur", "new", "cur", "new"]
    assert names[3].startswith(".Archive/")
    assert not any("tmp/" in n or "uidlist" in n for n in names)


def test_a_from_line_splits_only_where_a_header_block_follows() -> None:
    lines = [
        "From a@x.example Sat Jan  1 00:00:00 2026\n",
        "Subject: one\n",
        "\n",
        "From here on it broke.\n",
        "\n",
        "From b@x.example Sat Jan  2 00:00:00 2026\n",
        "Subject: two\n",
        "\n",
        "body\n",
        "From the end\n",
    ]
    (first, one), (second, two) = split_mbox(lines)
    assert (first, second) == (
        "a@x.example Sat Jan  1 00:00:00 2026",
        "b@x.example Sat Jan  2 00:00:00 2026",
    )
    assert one == ["Subject: one\n", "\n", "From here on it broke.\n"]
    assert two == ["Subject: two\n", "\n", "body\n", "From the end\n"]


def test_mboxrd_escapes_come_off_one_level(tmp_path: Path) -> None:
    raw = b"From: a@x.example\nSubject: q\n\n>From quoted\n>>From twice\n"
    path = tmp_path / "box.mbox"
    path.write_bytes(mbox_bytes([raw]))
    assert b">>>From" in path.read_bytes()
    (mail,) = load_mail([path])
    assert mail.raw == raw


def test_a_cr_only_mbox_gives_whole_messages(tmp_path: Path) -> None:
    path = tmp_path / "classic"
    path.write_bytes(mbox_bytes(dated_messages(3), "\r"))
    found = load_mail([path])
    assert len(found) == 3
    assert all(len(m.raw) > 200 and b"\r" not in m.raw for m in found)
    assert found[0].raw.startswith(b"Return-Path: <ann@customer.example>\nFrom: ")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "empty file, no email in it"),
        (b"# Notes\n\nnot mail\n", "not an email, an mbox or a compressed mbox"),
    ],
)
def test_a_file_with_no_mail_is_an_error_naming_it(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "notes.md"
    path.write_bytes(content)
    with pytest.raises(NoMail, match=f"^{why}: {re.escape(str(path))}$"):
        read_mail([path])


def test_every_source_is_checked_before_any_message_is_read(tmp_path: Path) -> None:
    good = tmp_path / "box.mbox"
    good.write_bytes(mbox_bytes(dated_messages(2)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoMail, match=r"empty$"):
        read_mail([good, tmp_path / "empty"])


def test_a_large_mbox_is_streamed_not_held(tmp_path: Path) -> None:
    """40 MB of mbox read with a peak of Python allocations far below its size."""
    filler = ("x" * 76 + "\n") * 200
    one = f"From: a@x.example\nSubject: big\n\n{filler}"
    path = tmp_path / "big.mbox"
    with path.open("w") as handle:
        for index in range(2500):
            handle.write(
                f"From a@x.example Sat Jan  1 00:00:00 2026\nMessage-ID: <{index}@x>\n{one}\n"
            )
    assert path.stat().st_size > 38_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_mail([path]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 2500
    assert peak < 2_000_000, peak
