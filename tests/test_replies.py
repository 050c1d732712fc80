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
