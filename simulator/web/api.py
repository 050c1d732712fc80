"""The JSON API: the CLI's rows, as they are, and the OpenAPI document describing them.

A listing answers one page: `{"items", "total", "limit", "offset", "next"}`, with
`next` (and a `Link: <...>; rel="next"` header) the URL of the following page, or
null on the last. `?limit=` is 100 unless asked (at most 1,000), `?offset=` 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator import __version__
from simulator.domain import OutboxStatus
from simulator.reports import conversation, rows, summary
from simulator.reports.safe import json_text


class SafeJSONResponse(JSONResponse):
    """JSON written by the same guard as the command line's (reports/safe.py)."""

    def render(self, content: Any) -> bytes:
        return json_text(content).encode("utf-8")


def _api(query: Callable[[Request, Session], Any]) -> Callable[[Request], JSONResponse]:
    """A JSON endpoint answering with `query`'s rows (a plain def: it runs in the pool)."""

    def endpoint(request: Request) -> JSONResponse:
        with request.app.state.ctx.reader.read() as session:
            return SafeJSONResponse(query(request, session))

    return endpoint


def _param(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


def message_filter(request: Request) -> rows.MessageFilter:
    """The messages filters of a request's query string (the API's and the page's)."""
    return rows.MessageFilter(
        outcome=_param(request, "outcome"),
        reason=_param(request, "reason"),
        sender=_param(request, "sender"),
        intake_address=_param(request, "intake"),
        since=rows.moment(_param(request, "since"), "since"),
        until=rows.moment(_param(request, "until"), "until", end_of_day=True),
        search=_param(request, "q"),
    )


def next_url(request: Request, window: rows.Window, total: int) -> str | None:
    """The same request for the page after `window`, or None when it is the last."""
    if window.offset + window.limit >= total:
        return None
    query = {
        **dict(request.query_params),
        "limit": window.limit,
        "offset": window.offset + window.limit,
    }
    return f"{request.url.path}?{urlencode(query)}"


Listing = Callable[[Request, Session, rows.Window], tuple[list[dict[str, Any]], int]]


def _listing(query: Listing) -> Callable[[Request], JSONResponse]:
    """A paginated JSON listing; a plain def, so Starlette runs it in its thread pool
    and a large page never holds the event loop that the SMTP listener shares."""

    def endpoint(request: Request) -> JSONResponse:
        window = rows.window_from(_param(request, "limit"), _param(request, "offset"))
        with request.app.state.ctx.reader.read() as session:
            items, total = query(request, session, window)
        following = next_url(request, window, total)
        body = {
            "items": items,
            "total": total,
            "limit": window.limit,
            "offset": window.offset,
            "next": following,
        }
        headers = {"link": f'<{following}>; rel="next"'} if following else None
        return SafeJSONResponse(body, headers=headers)

    return endpoint


def _messages(request: Request, session: Session, window: rows.Window) -> Any:
    where = message_filter(request)
    return rows.messages(session, where=where, window=window), rows.messages_total(session, where)


def _ledger(request: Request, session: Session, window: rows.Window) -> Any:
    model = _param(request, "model")
    return rows.ledger(session, model, window), rows.ledger_total(session, model)


def _outbox(request: Request, session: Session, window: rows.Window) -> Any:
    status = rows.one_of("status", _param(request, "status"), OutboxStatus)
    return rows.outbox(session, status, window), rows.outbox_total(session, status)


def openapi_document() -> dict[str, Any]:
    text = (resources.files("simulator.web") / "openapi.json").read_text(encoding="utf-8")
    document = json.loads(text)
    document["info"]["version"] = __version__
    return document


def _number(request: Request, name: str) -> int:
    return int(request.path_params[name])


def api_message_raw(request: Request) -> Response:
    """The message's bytes as received, as a download: never rendered by the browser."""
    delivery_id = _number(request, "id")
    with request.app.state.ctx.reader.read() as session:
        data = conversation.message_raw(session, delivery_id)
    disposition = f'attachment; filename="message-{delivery_id}.eml"'
    return Response(data, media_type="message/rfc822", headers={"content-disposition": disposition})


def api_openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.openapi)


# Every one is described in openapi.json (a test holds the two together).
API_ROUTES = [
    Route(
        "/api/issues",
        _listing(lambda _, s, w: (rows.issues(s, w), rows.issues_total(s))),
    ),
    Route(
        "/api/issues/{number:int}",
        _api(lambda request, session: conversation.issue(session, _number(request, "number"))),
    ),
    Route("/api/users", _listing(lambda _, s, w: (rows.users(s, w), rows.users_total(s)))),
    Route("/api/messages", _listing(_messages)),
    Route(
        "/api/messages/{id:int}",
        _api(lambda request, session: conversation.message(session, _number(request, "id"))),
    ),
    Route("/api/messages/{id:int}/raw", api_message_raw),
    Route("/api/ledger", _listing(_ledger)),
    Route("/api/outbox", _listing(_outbox)),
    Route(
        "/api/report",
        _api(
            lambda request, session: summary.report(
                session,
                request.app.state.ctx.org,
                summary.parse_as_of(_param(request, "as_of")),
            )
        ),
    ),
    Route("/api/version", _api(lambda _, session: rows.live_version(session))),
    Route("/api/openapi.json", api_openapi),
]
