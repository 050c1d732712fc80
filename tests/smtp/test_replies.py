"""Every reply constant's name carries its code, and its enhanced code matches its class."""

from __future__ import annotations

import re

from simulator.smtp import replies

NAMED = re.compile(r"^S(\d{3})_[A-Z0-9_]+$")
LINE = re.compile(r"^(\d{3}) (\d)\.\d{1,3}\.\d{1,3} \S")


def test_each_name_matches_its_code() -> None:
    constants = {n: v for n, v in vars(replies).items() if n.isupper() and n != "CHAOS"}
    assert len(constants) >= 10
    for name, line in constants.items():
        named = NAMED.match(name)
        assert named, f"{name} does not follow S<code>_<WHAT>"
        shape = LINE.match(line)
        assert shape, f"{name} = {line!r} is not '<code> <enhanced code> <text>'"
        assert shape.group(1) == named.group(1), f"{name} holds a {shape.group(1)} line"
        assert shape.group(2) == line[0], f"{name}: enhanced code class differs from the reply's"


def test_chaos_template_renders_a_proper_line() -> None:
    line = replies.CHAOS.format(code=451, enhanced="4.3.0", stage="data")
    assert LINE.match(line) and line.startswith("451 4.3.0")


def test_each_numbered_250_line_round_trips_through_its_parser() -> None:
    lines = {n: v for n, v in vars(replies).items() if n.startswith("S") and n.isupper()}
    numbered = {n: v for n, v in lines.items() if n.startswith("S250_") and "{" in v}
    assert set(numbered) == {"S250_ACCEPTED", "S250_SPOOLED"}
    for name, line in numbered.items():
        (field,) = re.findall(r"\{(\w+)\}", line)
        parse = getattr(replies, field)  # each placeholder is named after its parser
        for number in (0, 7, 10**12):
            sent = line.format(**{field: number})
            assert parse(sent) == number, name
            assert parse(sent.split(" ", 1)[1]) == number, f"{name} without its code"
            assert parse(f"{sent} later") is None and parse(sent.replace("250", "251")) is None
        for other_name, other in lines.items():
            if other_name != name:
                assert parse(re.sub(r"\{\w+\}", "7", other)) is None, (name, other_name)
