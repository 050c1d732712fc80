"""What a web server is started with: address, port, the form's rate limit and the
connection limits.

Kept apart from app.py so that the command line can name the defaults without
importing Starlette.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WEB_PORT = 8080
DEFAULT_FORM_RATE_LIMIT = 5  # submissions per address (its +tags counted as one) per hour
DEFAULT_FORM_CLIENT_RATE_LIMIT = 20  # submissions per client IP address per hour
WEB_MAX_CONNECTIONS = 50
WEB_HEADER_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_WEB_PORT
    form_rate_limit: int = DEFAULT_FORM_RATE_LIMIT
    max_connections: int = WEB_MAX_CONNECTIONS
    header_timeout: float = WEB_HEADER_TIMEOUT_SECONDS
    # File descriptors kept for the rest of the process (the SMTP listener's sessions).
    descriptor_reserve: int = 32
    # Last, so positional construction from the command line keeps its order.
    form_client_rate_limit: int = DEFAULT_FORM_CLIENT_RATE_LIMIT
