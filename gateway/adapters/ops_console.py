"""The ops console: a page at ``/ops`` and the JSON API and live stream behind it.

Everything here is S0: ids, times, status codes, error classes. The live stream is
Server-Sent Events fed by the delivery log itself (rows after a cursor), so it shows
the attempts of every gateway process sharing the store, not only this one's.
"""

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from importlib import resources
from typing import Protocol

from aiohttp import web

from contracts.ops import DeliveryLogEntry, DeliveryLogPage
from contracts.problem import FieldError
from gateway.access import ApiRole
from gateway.adapters.problems import problem_response
from gateway.adapters.routes import Answer, Route, problem_answer
from gateway.adapters.slot import Slot
from gateway.model import AttemptOutcome, DeliveryLogQuery, LoggedAttempt

STATIC_PACKAGE = "gateway.adapters.static"
STATIC_FILES = {
    "ops.js": "text/javascript",
    "ops.css": "text/css",
}
MAX_PAGE = 500
HEARTBEAT_S = 15.0


class DeliveryLogReader(Protocol):
    async def delivery_log_entries(
        self, query: DeliveryLogQuery, *, newest_first: bool = False
    ) -> list[LoggedAttempt]: ...


@dataclass(frozen=True, slots=True)
class OpsContext:
    log: DeliveryLogReader
    poll_s: float = 0.25


OPS = web.AppKey("ops_console", Slot[OpsContext])


class BadQuery(ValueError):
    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter
        self.detail = detail


def _time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadQuery(name, "is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise BadQuery(name, "needs a UTC offset")
    return moment


def _int(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise BadQuery(name, "is not a non-negative whole number")
    return min(int(raw), high)


def log_query(request: web.Request, *, after_id: int | None = None) -> DeliveryLogQuery:
    """The filters of a request; ``q`` finds a distribution id or a case id."""
    outcome_raw = request.query.get("outcome") or None
    try:
        outcome = AttemptOutcome(outcome_raw) if outcome_raw else None
    except ValueError:
        raise BadQuery(
            "outcome", "is not one of " + ", ".join(o.value for o in AttemptOutcome)
        ) from None
    q = (request.query.get("q") or "").strip()
    case_id = request.query.get("case_id") or None
    distribution_id = request.query.get("distribution_id") or None
    if q:
        if q.startswith("urn:"):
            case_id = q
        else:
            distribution_id = q
    return DeliveryLogQuery(
        after_id=_int(request, "after_id", 0, 2**62) if after_id is None else after_id,
        case_id=case_id,
        distribution_id=distribution_id,
        recipient=request.query.get("recipient") or None,
        outcome=outcome,
        since=_time(request, "since"),
        until=_time(request, "until"),
        limit=_int(request, "limit", 100, MAX_PAGE) or 1,
    )


def entry_of(logged: LoggedAttempt) -> DeliveryLogEntry:
    attempt = logged.attempt
    return DeliveryLogEntry(
        log_id=logged.log_id,
        at=attempt.at,
        distribution_id=attempt.distribution_id,
        case_id=attempt.case_id,
        recipient=attempt.recipient,
        attempt=attempt.attempt,
        outcome=attempt.outcome.value,
        status_code=attempt.status_code,
        error_class=attempt.error_class,
        latency_ms=attempt.latency_ms,
        next_try_at=attempt.next_try_at,
    )


def _bad_query(exc: BadQuery) -> web.Response:
    return problem_response(
        400,
        slug="bad-query",
        detail="A query parameter is not understood.",
        errors=[FieldError(pointer=f"?{exc.parameter}", detail=exc.detail)],
    )


async def get_deliveries(request: web.Request) -> web.Response:
    """Newest first; ``after_id`` gives the ones after a cursor, oldest first."""
    ctx = request.app[OPS].value
    try:
        query = log_query(request)
    except BadQuery as exc:
        return _bad_query(exc)
    newest_first = "after_id" not in request.query
    rows = await ctx.log.delivery_log_entries(query, newest_first=newest_first)
    entries = [entry_of(row) for row in rows]
    last_id = max((e.log_id for e in entries), default=query.after_id)
    page = DeliveryLogPage(entries=entries, last_id=last_id)
    return web.json_response(text=page.model_dump_json())


async def stream_deliveries(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: every new attempt matching the filters, as it is logged."""
    ctx = request.app[OPS].value
    last_event = request.headers.get("Last-Event-ID", "")
    try:
        start = int(last_event) if last_event.isascii() and last_event.isdigit() else None
        query = log_query(request, after_id=start)
    except BadQuery as exc:
        return _bad_query(exc)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    cursor = query.after_id
    idle_s = 0.0
    while True:
        rows = await ctx.log.delivery_log_entries(replace(query, after_id=cursor))
        for row in rows:
            data = entry_of(row).model_dump_json()
            await response.write(f"id: {row.log_id}\nevent: attempt\ndata: {data}\n\n".encode())
            cursor = row.log_id
        if rows:
            idle_s = 0.0
            continue
        idle_s += ctx.poll_s
        if idle_s >= HEARTBEAT_S:
            await response.write(b": keep-alive\n\n")
            idle_s = 0.0
        await asyncio.sleep(ctx.poll_s)


async def get_page(request: web.Request) -> web.Response:
    html = resources.files(STATIC_PACKAGE).joinpath("ops.html").read_text(encoding="utf-8")
    return web.Response(
        text=html,
        content_type="text/html",
        headers={
            "Content-Security-Policy": (
                "default-src 'none'; script-src 'self'; style-src 'self'; "
                "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                "form-action 'none'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


async def get_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound(reason="no such file")
    body = resources.files(STATIC_PACKAGE).joinpath(name).read_bytes()
    return web.Response(
        body=body,
        content_type=STATIC_FILES[name],
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


_LOG_FILTERS = (
    "Filters: case_id, distribution_id, q (either), recipient, outcome, since, until "
    "(ISO 8601 with offset), after_id, limit (at most 500)."
)

OPS_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/ops",
        get_page,
        "getOpsConsole",
        "The ops console page (its data needs an ops token).",
        public=True,
        answers={200: Answer("The page.", media_type="text/html")},
    ),
    Route(
        "GET",
        "/ops/static/{name}",
        get_static,
        "getOpsStatic",
        "Script and style of the ops console.",
        public=True,
        answers={
            200: Answer("The file.", media_type="text/plain"),
            404: problem_answer("No such file."),
        },
    ),
    Route(
        "GET",
        "/v1/ops/deliveries",
        get_deliveries,
        "listDeliveries",
        "The delivery log, newest first; with after_id, the attempts after that cursor. "
        + _LOG_FILTERS,
        roles=frozenset({ApiRole.OPS}),
        answers={
            200: Answer("A page of attempts.", DeliveryLogPage),
            400: problem_answer("Bad filter."),
        },
    ),
    Route(
        "GET",
        "/v1/ops/deliveries/stream",
        stream_deliveries,
        "streamDeliveries",
        "Server-Sent Events, one `attempt` event per new attempt (Last-Event-ID resumes). "
        + _LOG_FILTERS,
        roles=frozenset({ApiRole.OPS}),
        answers={
            200: Answer("An endless text/event-stream.", media_type="text/event-stream"),
            400: problem_answer("Bad filter."),
        },
    ),
)
