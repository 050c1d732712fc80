"""The web view, the customer web form and the JSON API, in one small Starlette app.

Pages are rendered on the server with Jinja2 (autoescape on: whatever came in
by mail or form is shown as text). The JSON API answers with the very rows the
CLI prints with `--format json` (simulator.reports). The form POST is the only
route that writes, and it writes through the group-commit writer, like SMTP.

The app runs inside the caller's event loop (simulator.web.server), next to the
SMTP listener. Database reads run in Starlette's thread pool (plain `def`
endpoints), so neither a page nor a JSON answer ever blocks the loop that
serves SMTP. Pages refresh themselves by polling `/api/version`, which works
whether the mail arrives in this process or in another `serve` on the same db.

This module builds the app and its route table; the handlers are in pages.py
(pages and the form) and api.py (the JSON API).
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator.delivery.writer import GroupCommitWriter
from simulator.domain import is_loopback
from simulator.errors import ConfigError, IntakeSimError, NotFound
from simulator.org import Org
from simulator.store.db import Store
from simulator.web import charts
from simulator.web import form as webform
from simulator.web.api import API_ROUTES, openapi_document
from simulator.web.options import DEFAULT_FORM_CLIENT_RATE_LIMIT, DEFAULT_FORM_RATE_LIMIT
from simulator.web.pages import (
    WebContext,
    dashboard,
    form,
    issue_page,
    issues_page,
    messages_page,
    outbox_page,
    report_page,
    submit,
    users_page,
)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SECURITY_HEADERS = {
    # Scripts and styles only from this server: an injected tag could not run anyway.
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("simulator.web", "templates"),
        autoescape=True,  # every template, whatever its name
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["charts"] = charts
    env.filters["addr"] = address_breaks
    env.filters["code"] = code_breaks
    env.filters["when"] = when
    return env


def address_breaks(address: str | None) -> Markup:
    """An address that may wrap only after its @ and before a dot of its domain: a
    narrow column shows `carol@` / `customer.example`, never `carol@custo` / `mer.example`."""
    if not address:
        return Markup("-")
    local, at, domain = address.rpartition("@") if "@" in address else ("", "", address)
    wrapped = str(escape(domain)).replace(".", "<wbr>.")
    return Markup(f"{escape(local)}{at}<wbr>{wrapped}" if at else wrapped)


def code_breaks(code: str | None) -> Markup:
    """A reason code such as `subject_tag_untrusted` that may wrap only after an `_`."""
    return Markup(str(escape(code or "")).replace("_", "_<wbr>"))


def when(iso: str | None) -> Markup:
    """An ISO-8601 UTC time as the pages show it, to the second and still UTC ISO
    (`2026-12-02 04:24:14Z`), the full value kept in the `datetime` attribute."""
    if not iso:
        return Markup("-")
    shown = f"{iso[:10]} {iso[11:19]}Z" if len(iso) >= 19 else iso
    return Markup('<time datetime="{}">{}</time>').format(iso, shown)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"cache-control"]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


async def _library_error(request: Request, exc: Exception) -> Response:
    status = 400 if isinstance(exc, ConfigError) else 404 if isinstance(exc, NotFound) else 503
    return JSONResponse({"error": str(exc)}, status_code=status)


def allowed_hosts(host: str) -> list[str]:
    """Host names the server answers to: on any loopback address (127.0.0.2 too) only
    loopback names and the address itself, so DNS rebinding cannot reach it."""
    if not is_loopback(host):
        return ["*"]
    own = f"[{host.strip('[]')}]" if ":" in host else host
    return list(dict.fromkeys([*LOOPBACK_NAMES, own]))


def create_app(
    reader: Store,
    org: Org,
    writer: GroupCommitWriter,
    *,
    host: str = "127.0.0.1",
    form_rate_limit: int = DEFAULT_FORM_RATE_LIMIT,
    form_client_rate_limit: int = DEFAULT_FORM_CLIENT_RATE_LIMIT,
) -> Starlette:
    """The ASGI app. On a loopback address it answers only to loopback host names,
    so a web page elsewhere cannot reach it through DNS rebinding."""
    static = StaticFiles(packages=[("simulator.web", "static")])
    routes = [
        Route("/", dashboard),
        Route("/issues", issues_page),
        Route("/users", users_page),
        Route("/issues/{number:int}", issue_page),
        Route("/messages", messages_page),
        Route("/outbox", outbox_page),
        Route("/report", report_page),
        Route("/submit", form, methods=["GET"]),
        Route("/submit", submit, methods=["POST"]),
        *API_ROUTES,
        Mount("/static", static, name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host)),
        ],
        exception_handlers={IntakeSimError: _library_error},
    )
    app.state.ctx = WebContext(
        reader=reader,
        org=org,
        writer=writer,
        csrf=webform.CsrfTokens(),
        limiter=webform.RateLimiter(form_rate_limit),
        client_limiter=webform.RateLimiter(form_client_rate_limit),
        templates=templates(),
    )
    app.state.openapi = openapi_document()
    return app
