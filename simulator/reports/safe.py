"""The one output guard: which characters no listing, table, CSV or JSON carries raw.

Text that came by mail is shown as received except for these: C0 controls but tab
and LF, DEL and the C1 controls (ESC, BEL, CSI U+009B and OSC U+009D would let a
subject repaint a terminal), and the Unicode bidi controls (U+202E shows
"gpj.exe" as "exe.jpg"; U+2066-2069 isolate). Tables and CSV show each as `?`;
JSON writes them as \\u escapes, so a reader parses the very value that was stored.
The command line (cli/render.py) and the JSON API (web/api.py) both use these.
"""

from __future__ import annotations

import json
import re
from typing import Any

UNSAFE = re.compile(
    "[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]"
)
# json.dumps escapes C0 itself; these it would write raw (U+2028/2029 end a line in
# some readers). Outside strings JSON has none of them, so replacing is safe.
JSON_UNSAFE = re.compile(
    "[\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\u2028\\u2029]"
)


def defused(text: str) -> str:
    """`text` with each unsafe character shown as '?'."""
    return UNSAFE.sub("?", text)


def json_text(value: Any, indent: int | None = None) -> str:
    """JSON of `value`, UTF-8 kept readable, with the unsafe characters escaped."""
    return json_escaped(json.dumps(value, indent=indent, ensure_ascii=False))


def json_escaped(text: str) -> str:
    """JSON text with the unsafe characters written as \\u escapes."""
    return JSON_UNSAFE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
