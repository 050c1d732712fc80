"""What a web server is started with: address, port and the form's rate limit.

Kept apart from app.py so that the command line can name the defaults without
importing Starlette.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WEB_PORT = 8080
DEFAULT_FORM_RATE_LIMIT = 5  # submissions per address per hour


@dataclass(frozen=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_WEB_PORT
    form_rate_limit: int = DEFAULT_FORM_RATE_LIMIT
