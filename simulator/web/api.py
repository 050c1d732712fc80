"""The JSON API: the CLI's rows, as they are, and the OpenAPI document describing them."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator import __version__
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
    Route("/api/issues", _api(lambda _, session: rows.issues(session))),
    Route(
        "/api/issues/{number:int}",
        _api(lambda request, session: conversation.issue(session, _number(request, "number"))),
    ),
    Route("/api/users", _api(lambda _, session: rows.users(session))),
    Route(
        "/api/messages",
        _api(lambda request, session: rows.messages(session, _param(request, "outcome"))),
    ),
    Route(
        "/api/messages/{id:int}",
        _api(lambda request, session: conversation.message(session, _number(request, "id"))),
    ),
    Route("/api/messages/{id:int}/raw", api_message_raw),
    Route(
        "/api/ledger",
        _api(lambda request, session: rows.ledger(session, _param(request, "model"))),
    ),
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
