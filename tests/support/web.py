"""The web form as a test fills it in: its CSRF field and a valid submission."""

from __future__ import annotations

import re

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def form(**overrides: str) -> dict[str, str]:
    return {
        "name": "Quinn O'Hara, Jr.",
        "email": "Quinn@Portal.Example",
        "subject": "Cannot reset my password",
        "description": "I tried twice.\nNo email arrived.",
        **overrides,
    }
