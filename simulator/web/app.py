"""The web view, the customer web form and the JSON API, in one small Starlette app.

Pages are rendered on the server with Jinja2 (autoescape on: whatever came in
by mail or form is shown as text). The JSON API answers with the very rows the
CLI prints with `--format json` (simulator.reports). The form POST is the only
route that writes, and it writes through the group-commit writer, like SMTP.

The app runs inside the caller's event loop (`web_server`), next to the SMTP
listener. Database reads run in Starlette's thread pool (plain `def`
endpoints), so neither a page nor a JSON answer ever blocks the loop that
serves SMTP. Pages refresh themselves by polling `/api/version`, which works
whether the mail arrives in this process or in another `serve` on the same db.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from jinja2 import Environment, PackageLoader
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator import __version__
from simulator.delivery.writer import GroupCommitWriter
from simulator.domain import Channel, Submission
from simulator.errors import ConfigError, IntakeSimError, StoreUnavailable
from simulator.org import Org
from simulator.reports import rows as reports
from simulator.store.db import Store
from simulator.web import charts
from simulator.web import form as webform

log = logging.getLogger("intake_sim.web")

DEFAULT_WEB_PORT = 8080
DEFAULT_FORM_RATE_LIMIT = 5  # submissions per address per hour
CSRF_COOKIE = "intake_sim_csrf"
MAX_FORM_BYTES = 64 * 1024
PAGE_ROWS = 200  # newest rows a page shows; the JSON API always answers in full
POLL_MS = 1000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SECURITY_HEADERS = {
    # Scripts and styles only from this server: an injected tag could not run anyway.
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_WEB_PORT
    form_rate_limit: int = DEFAULT_FORM_RATE_LIMIT


@dataclass
class WebContext:
    reader: Store  # reads only: its SQLite transactions never take the write lock
    org: Org
    writer: GroupCommitWriter
    csrf: webform.CsrfTokens
    limiter: webform.RateLimiter
    templates: Environment


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("simulator.web", "templates"),
        autoescape=True,  # every template, whatever its name
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["charts"] = charts
    return env


# --- reading -----------------------------------------------------------------------


def _page(ctx: WebContext, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = ctx.templates.get_template(name).render(
        org=ctx.org.name, intake=ctx.org.intake_addresses[0], poll_ms=POLL_MS, **values
    )
    return HTMLResponse(html, status_code=status)


def _read_live(ctx: WebContext, **queries: Callable[[Session], Any]) -> dict[str, Any]:
    """Run each query in one session, after reading the live version, so the page
    is at least as new as the version it carries (the poller compares with it)."""
    with ctx.reader.read() as session:
        version = reports.live_version(session)
        rows = {name: query(session) for name, query in queries.items()}
    rows["version"] = f"{version['deliveries']}.{version['seat_events']}"
    return rows


def _live_page(ctx: WebContext, name: str, data: dict[str, Any], **values: Any) -> HTMLResponse:
    """Page `name` (its template and nav entry), carrying the version its data was read at."""
    return _page(ctx, f"{name}.html", nav=name, version=data["version"], **values)


def _charts(report: dict[str, Any], ledger: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cost_chart": charts.cost_chart(report),
        "seat_chart": charts.seat_chart(report),
        "seat_lines": charts.seat_lines(ledger),
    }


def dashboard(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    data = _read_live(
        ctx,
        report=lambda s: reports.report(s, ctx.org),
        issues=reports.issues,
        messages=reports.messages,
        ledger=reports.ledger,
    )
    return _live_page(
        ctx,
        "dashboard",
        data,
        report=data["report"],
        issues=data["issues"][-10:][::-1],
        messages=data["messages"][-12:][::-1],
        **_charts(data["report"], data["ledger"]),
    )


def _newest_first(ctx: WebContext, name: str, data: dict[str, Any], **extra: Any) -> HTMLResponse:
    """A listing page `name`: its newest PAGE_ROWS rows of data[name], newest first."""
    rows = data[name]
    return _live_page(
        ctx,
        name,
        data,
        total=len(rows),
        **{name: rows[-PAGE_ROWS:][::-1]},
        **extra,
    )


def issues_page(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    data = _read_live(ctx, issues=reports.issues, messages=reports.messages)
    by_issue: dict[int, list[dict[str, Any]]] = {}
    for message in data["messages"]:
        if message["issue"] is not None and message["outcome"] != "duplicate":
            by_issue.setdefault(message["issue"], []).append(message)
    return _newest_first(ctx, "issues", data, messages=by_issue)


def seat_reasons(ledger: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (user, model), the ledger event that put the seat in its current state."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for event in ledger:  # in seq order: the last one wins
        latest[(event["user"], event["model"])] = event
    return latest


def users_page(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    data = _read_live(ctx, users=reports.users, ledger=reports.ledger)
    return _newest_first(ctx, "users", data, seat_why=seat_reasons(data["ledger"]))


def report_page(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    data = _read_live(ctx, report=lambda s: reports.report(s, ctx.org), ledger=reports.ledger)
    by_reason: dict[tuple[str, str], int] = {}
    for event in seat_reasons(data["ledger"]).values():
        if event["delta"] > 0:
            key = (event["model"], event["reason"])
            by_reason[key] = by_reason.get(key, 0) + 1
    return _live_page(
        ctx,
        "report",
        data,
        report=data["report"],
        by_reason=sorted(by_reason.items()),
        **_charts(data["report"], data["ledger"]),
    )


# --- the JSON API: the CLI's rows, as they are --------------------------------------


def _api(query: Callable[[Request, Session], Any]) -> Callable[[Request], JSONResponse]:
    """A JSON endpoint answering with `query`'s rows (a plain def: it runs in the pool)."""

    def endpoint(request: Request) -> JSONResponse:
        with request.app.state.ctx.reader.read() as session:
            return JSONResponse(query(request, session))

    return endpoint


def _param(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


def openapi_document() -> dict[str, Any]:
    text = (resources.files("simulator.web") / "openapi.json").read_text(encoding="utf-8")
    document = json.loads(text)
    document["info"]["version"] = __version__
    return document


def api_openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.openapi)


# --- the form ------------------------------------------------------------------------


def _form_page(
    ctx: WebContext,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    token = ctx.csrf.issue()
    response = _page(
        ctx,
        "submit.html",
        status=status,
        nav="submit",
        csrf=token,
        values=values or {},
        errors=errors or {},
        limits=webform.MAX_LENGTH,
        rate_limit=ctx.limiter.limit,
    )
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/submit")
    return response


def form(request: Request) -> HTMLResponse:
    return _form_page(request.app.state.ctx)


async def _form_fields(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise HTTPException(415, "the form is sent as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, f"a form submission is at most {MAX_FORM_BYTES} bytes")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}


async def submit(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    fields = await _form_fields(request)
    values = {name: fields.get(name, "") for name in webform.FIELDS}
    if not ctx.csrf.valid(request.cookies.get(CSRF_COOKIE), fields.get("csrf")):
        message = "This form has expired. Please send it again."
        return _form_page(ctx, 403, values, {"form": message})
    entry, errors = webform.read_form(fields, ctx.org)
    if errors:
        return _form_page(ctx, 400, values, {"form": "Please correct the fields below.", **errors})
    if not ctx.limiter.allow(entry.email):
        message = (
            f"Too many submissions from {entry.email}: at most {ctx.limiter.limit} an hour. "
            "Please try again later."
        )
        return _form_page(ctx, 429, values, {"form": message})
    now = datetime.now(UTC)
    item = Submission(
        raw=webform.build_message(entry, ctx.org, now),
        envelope_from=entry.email,
        recipients=[ctx.org.intake_addresses[0]],
        received_at=now,
        channel=Channel.WEB_FORM,
    )
    try:
        result = await ctx.writer.submit(item)
    except StoreUnavailable:
        message = "We could not store your request just now. Please try again in a minute."
        return _form_page(ctx, 503, values, {"form": message})
    log.info("web form: %s", result.log_line())
    return _page(ctx, "thanks.html", nav="submit", result=result, entry=entry)


# --- the app and its server ------------------------------------------------------------


# Every one is described in openapi.json (a test holds the two together).
API_ROUTES = [
    Route("/api/issues", _api(lambda _, session: reports.issues(session))),
    Route("/api/users", _api(lambda _, session: reports.users(session))),
    Route(
        "/api/messages",
        _api(lambda request, session: reports.messages(session, _param(request, "outcome"))),
    ),
    Route(
        "/api/ledger",
        _api(lambda request, session: reports.ledger(session, _param(request, "model"))),
    ),
    Route(
        "/api/report",
        _api(
            lambda request, session: reports.report(
                session,
                request.app.state.ctx.org,
                reports.parse_as_of(_param(request, "as_of")),
            )
        ),
    ),
    Route("/api/version", _api(lambda _, session: reports.live_version(session))),
    Route("/api/openapi.json", api_openapi),
]


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
    status = 400 if isinstance(exc, ConfigError) else 503
    return JSONResponse({"error": str(exc)}, status_code=status)


def create_app(
    reader: Store,
    org: Org,
    writer: GroupCommitWriter,
    *,
    host: str = "127.0.0.1",
    form_rate_limit: int = DEFAULT_FORM_RATE_LIMIT,
) -> Starlette:
    """The ASGI app. On a loopback address it answers only to loopback host names,
    so a web page elsewhere cannot reach it through DNS rebinding."""
    static = StaticFiles(packages=[("simulator.web", "static")])
    routes = [
        Route("/", dashboard),
        Route("/issues", issues_page),
        Route("/users", users_page),
        Route("/report", report_page),
        Route("/submit", form, methods=["GET"]),
        Route("/submit", submit, methods=["POST"]),
        *API_ROUTES,
        Mount("/static", static, name="static"),
    ]
    allowed = ["*"] if host not in LOOPBACK_HOSTS else ["127.0.0.1", "localhost", "[::1]"]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed),
        ],
        exception_handlers={IntakeSimError: _library_error},
    )
    app.state.ctx = WebContext(
        reader=reader,
        org=org,
        writer=writer,
        csrf=webform.CsrfTokens(),
        limiter=webform.RateLimiter(form_rate_limit),
        templates=templates(),
    )
    app.state.openapi = openapi_document()
    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the host process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def web_server(app: ASGIApp, host: str, port: int) -> AsyncIterator[tuple[str, int]]:
    """Serve `app` on host:port (0 picks a free port) in the running loop; yields the address.

    We bind the socket ourselves so that a busy port is an OSError here, not an
    exit deep inside uvicorn, and so that port 0 reports the port it got.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host.strip("[]"), port), family=family)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve the web view on {host}:{port}: {exc.strerror or exc}"
        ) from None
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="web-server")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise ConfigError("the web server stopped while starting")
            await asyncio.sleep(0.01)
        yield sock.getsockname()[0], sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()
