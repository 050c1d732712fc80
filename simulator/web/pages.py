"""The web view's pages and the customer web form's page and POST handler.

Pages are rendered from the templates with the app's WebContext; the form's
validation, CSRF tokens and rate limit are simulator.web.form's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from simulator.delivery.writer import GroupCommitWriter
from simulator.domain import DELIVERY_REASONS, Channel, Outcome, Submission
from simulator.errors import StoreUnavailable
from simulator.org import Org
from simulator.reports import conversation, rows
from simulator.reports.charts import svg as chart_svg
from simulator.reports.plots import months_chart
from simulator.reports.rows import issues, live_version, messages, outbox, users
from simulator.reports.summary import by_month, report
from simulator.store.db import Store
from simulator.web import charts
from simulator.web import form as webform
from simulator.web.api import message_filter

log = logging.getLogger("intake_sim.web")

CSRF_COOKIE = "intake_sim_csrf"
MAX_FORM_BYTES = 64 * 1024
POLL_MS = 1000


@dataclass
class WebContext:
    reader: Store  # reads only: its SQLite transactions never take the write lock
    org: Org
    writer: GroupCommitWriter
    csrf: webform.CsrfTokens
    limiter: webform.RateLimiter  # per typed address (its mailbox)
    client_limiter: webform.RateLimiter  # per client IP address
    templates: Environment


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
        version = live_version(session)
        rows = {name: query(session) for name, query in queries.items()}
    rows["version"] = f"{version['deliveries']}.{version['seat_events']}"
    return rows


def _live_page(ctx: WebContext, name: str, data: dict[str, Any], **values: Any) -> HTMLResponse:
    """Page `name` (its template and nav entry), carrying the version its data was read at."""
    return _page(ctx, f"{name}.html", nav=name, version=data["version"], **values)


def _seat_lines(session: Session) -> charts.SeatLines:
    """The chart of seats over the ledger, drawn from the ledger streamed in one pass."""
    return charts.seat_lines(
        rows.ledger_changes(session),
        events=rows.ledger_size(session),
        span=rows.ledger_span(session),
    )


def _charts(report: dict[str, Any], seat_lines: charts.SeatLines) -> dict[str, Any]:
    return {
        "cost_chart": charts.cost_chart(report),
        "seat_chart": charts.seat_chart(report),
        "seat_lines": seat_lines,
    }


def dashboard(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    data = _read_live(
        ctx,
        report=lambda s: report(s, ctx.org),
        issues=lambda s: issues(s, rows.Window(10, newest_first=True)),
        messages=lambda s: messages(s, window=rows.Window(12, newest_first=True)),
        seat_lines=_seat_lines,
    )
    return _live_page(
        ctx,
        "dashboard",
        data,
        report=data["report"],
        issues=data["issues"],
        messages=data["messages"],
        **_charts(data["report"], data["seat_lines"]),
    )


def _window(request: Request) -> rows.Window:
    """The page of a listing a request asks for (`?limit=&offset=`), newest first."""
    params = request.query_params
    return rows.window_from(params.get("limit"), params.get("offset"), newest_first=True)


def _pager(request: Request, window: rows.Window, shown: int, total: int) -> dict[str, Any]:
    """What a listing page says about its page: which rows, and links to its neighbours."""

    def link(offset: int) -> str:
        query = {**dict(request.query_params), "limit": window.limit, "offset": offset}
        return f"{request.url.path}?{urlencode(query)}"

    newer = link(max(window.offset - window.limit, 0)) if window.offset > 0 else None
    older = link(window.offset + window.limit) if window.offset + window.limit < total else None
    first = window.offset + 1 if shown else 0
    return {
        "first": first,
        "last": window.offset + shown,
        "total": total,
        "newer": newer,
        "older": older,
    }


def _listing_page(
    request: Request, name: str, data: dict[str, Any], window: rows.Window, **extra: Any
) -> HTMLResponse:
    """A listing page `name`: one page of data[name] (newest first) and its pager."""
    ctx: WebContext = request.app.state.ctx
    total = data[f"{name}_total"]
    pager = _pager(request, window, len(data[name]), total)
    return _live_page(ctx, name, data, total=total, pager=pager, **{name: data[name]}, **extra)


def issues_page(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    window = _window(request)
    data = _read_live(ctx, issues=lambda s: issues(s, window), issues_total=rows.issues_total)
    numbers = tuple(issue["number"] for issue in data["issues"])
    with ctx.reader.read() as session:  # the messages of this page's issues only
        shown = messages(session, where=rows.MessageFilter(issues=numbers))
    by_issue: dict[int, list[dict[str, Any]]] = {}
    for message in shown:
        if message["issue"] is not None and message["outcome"] != "duplicate":
            by_issue.setdefault(message["issue"], []).append(message)
    return _listing_page(request, "issues", data, window, messages=by_issue)


def issue_page(request: Request) -> HTMLResponse:
    """One issue with its conversation: each message's text, attachments, headers and
    a download of its raw bytes. An unknown number is the app's 404."""
    ctx: WebContext = request.app.state.ctx
    number = int(request.path_params["number"])
    data = _read_live(ctx, issue=lambda session: conversation.issue(session, number))
    return _page(ctx, "issue.html", nav="issues", version=data["version"], issue=data["issue"])


def messages_page(request: Request) -> HTMLResponse:
    """Deliveries, newest first, one page at a time, with the API's filters: outcome,
    reason, sender, intake mailbox, since/until and `q` (subject or sender)."""
    ctx: WebContext = request.app.state.ctx
    where = message_filter(request)
    window = _window(request)
    data = _read_live(
        ctx,
        messages=lambda s: messages(s, where=where, window=window),
        messages_total=lambda s: rows.messages_total(s, where),
        mailboxes=rows.intake_addresses,
    )
    params = request.query_params
    chosen = {
        name: params.get(name, "").strip() for name in ("sender", "intake", "since", "until", "q")
    }
    return _listing_page(
        request,
        "messages",
        data,
        window,
        wanted=where.outcome,
        wanted_reason=where.reason,
        chosen=chosen,
        outcomes=[choice.value for choice in Outcome],
        reasons=list(DELIVERY_REASONS),
        mailboxes=sorted(set(data["mailboxes"]) | set(ctx.org.intake_addresses)),
    )


def outbox_page(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    window = _window(request)
    data = _read_live(
        ctx, outbox=lambda s: outbox(s, window=window), outbox_total=rows.outbox_total
    )
    return _listing_page(request, "outbox", data, window)


def users_page(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    window = _window(request)

    def page(session: Session) -> dict[str, Any]:
        listed = users(session, window)
        why = rows.seat_reasons(session, [user["email"] for user in listed])
        return {"users": listed, "seat_why": why}

    data = _read_live(ctx, page=page, users_total=rows.users_total)
    data["users"] = data["page"]["users"]
    return _listing_page(request, "users", data, window, seat_why=data["page"]["seat_why"])


def report_page(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    data = _read_live(
        ctx,
        report=lambda s: report(s, ctx.org),
        by_reason=rows.seats_by_reason,
        seat_lines=_seat_lines,
        months=lambda s: by_month(s, ctx.org),
    )
    return _live_page(
        ctx,
        "report",
        data,
        report=data["report"],
        by_reason=data["by_reason"],
        # The same chart as `report --by month --plot`, drawn by the one chart module.
        month_chart=Markup(chart_svg(months_chart(data["months"], ctx.org)))
        if data["months"]
        else "",
        **_charts(data["report"], data["seat_lines"]),
    )


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


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def submit(request: Request) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    fields = await _form_fields(request)
    values = {name: fields.get(name, "") for name in webform.FIELDS}
    origin = request.headers.get("origin")
    if not webform.same_origin(origin, request.url.scheme, request.headers.get("host")):
        log.info("web form: 403 to %s, Origin %r", _client(request), origin)
        message = "This form was sent from another site, so it was not accepted."
        return _form_page(ctx, 403, values, {"form": message})
    if not ctx.csrf.valid(request.cookies.get(CSRF_COOKIE), fields.get("csrf")):
        message = "This form has expired. Please send it again."
        return _form_page(ctx, 403, values, {"form": message})
    entry, errors = webform.read_form(fields, ctx.org)
    if errors:
        return _form_page(ctx, 400, values, {"form": "Please correct the fields below.", **errors})
    # The client's own count first: a fresh address per submission must not buy a
    # fresh allowance (each new address would be a new user and a Team seat).
    if not ctx.client_limiter.allow(_client(request)):
        message = (
            f"Too many submissions from your network address: at most "
            f"{ctx.client_limiter.limit} an hour. Please try again later."
        )
        return _form_page(ctx, 429, values, {"form": message})
    if not ctx.limiter.allow(webform.limit_key(entry.email)):
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
