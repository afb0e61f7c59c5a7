"""The ops console: a page at ``/ops`` and the JSON API and live stream behind it.

Everything here is S0: ids, times, status codes, error classes. The live stream is
Server-Sent Events fed by the delivery log itself (rows after a cursor), so it shows
the attempts of every gateway process sharing the store, not only this one's.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from importlib import resources
from typing import Protocol

import structlog
from aiohttp import web

from contracts.ops import (
    AtRiskEntry,
    AtRiskPage,
    CircuitState,
    DeliveryLogEntry,
    DeliveryLogPage,
    QueueDepth,
    RecipientsPage,
    RecipientState,
)
from contracts.problem import FieldError
from gateway.access import ApiRole
from gateway.adapters.problems import problem_response
from gateway.adapters.routes import Answer, Parameter, Route, problem_answer
from gateway.adapters.slot import Slot
from gateway.errors import NotReady, StoreUnavailable
from gateway.model import (
    AtRisk,
    AttemptOutcome,
    DeliveryLogQuery,
    LoggedAttempt,
    RecipientActivity,
    RecipientLive,
)
from gateway.wilayah import kecamatan_by_code
from gateway.workflow import STANDARDS

log = structlog.get_logger(__name__)

STATIC_PACKAGE = "gateway.adapters.static"
STATIC_FILES = {
    "ops.js": "text/javascript",
    "ops.css": "text/css",
}
MAX_PAGE = 500
MAX_CURSOR = 10**12 - 1  # twelve digits, the most a query number may have
HEARTBEAT_S = 15.0
ACTIVITY_WINDOW = timedelta(hours=1)
MISSED_SHOWN_FOR = timedelta(hours=24)
BROKER_TIMEOUT_S = 2.0


class OpsStore(Protocol):
    async def delivery_log_entries(
        self, query: DeliveryLogQuery, *, newest_first: bool = False
    ) -> list[LoggedAttempt]: ...

    async def recipient_activity(self, since: datetime) -> list[RecipientActivity]: ...

    async def at_risk(self, now: datetime, *, missed_since: datetime) -> list[AtRisk]: ...


@dataclass(frozen=True, slots=True)
class OpsContext:
    """``recipients`` answers who this process delivers to; ``queue_depths`` asks the
    broker (and may raise when it is away); ``shared_queues`` are the retry ladder's
    queues and the parking queue."""

    log: OpsStore
    clock: Callable[[], datetime]
    recipients: Callable[[], Awaitable[Sequence[RecipientLive]]]
    queue_depths: Callable[[Sequence[str]], Awaitable[Mapping[str, int]]]
    shared_queues: tuple[str, ...] = ()
    poll_s: float = 0.25
    closing: asyncio.Event = field(default_factory=asyncio.Event)


async def end_streams(app: web.Application) -> None:
    """``on_shutdown``: end every live stream, so stopping need not wait for clients."""
    with contextlib.suppress(NotReady):
        app[OPS].value.closing.set()


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
    if not raw.isascii() or not raw.isdigit():
        raise BadQuery(name, "is not a non-negative whole number")
    if len(raw) > len(str(MAX_CURSOR)):
        raise BadQuery(name, f"has more than {len(str(MAX_CURSOR))} digits")
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
        after_id=_int(request, "after_id", 0, MAX_CURSOR) if after_id is None else after_id,
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
    if request.method == "HEAD":
        return response
    await response.write(b"retry: 2000\n\n")
    cursor = query.after_id
    idle_s = 0.0
    while not ctx.closing.is_set():
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.closing.wait(), ctx.poll_s)
    return response


def _unavailable() -> web.Response:
    return problem_response(
        503,
        slug="store-unavailable",
        detail="The store is unavailable.",
        headers={"Retry-After": "5"},
    )


async def _depths(ctx: OpsContext, queues: Sequence[str]) -> Mapping[str, int] | None:
    """The broker's answer, or ``None`` when it is away: the page still shows the rest."""
    try:
        async with asyncio.timeout(BROKER_TIMEOUT_S):
            return await ctx.queue_depths(queues)
    except Exception as exc:  # noqa: BLE001 - queue sizes are optional; the store's data is not
        log.warning("ops.queue_depths_unavailable", error_class=type(exc).__name__)
        return None


async def get_recipients(request: web.Request) -> web.Response:
    """Per recipient: circuit, queue, what waits and since when, the last hour."""
    ctx = request.app[OPS].value
    now = ctx.clock()
    recipients = await ctx.recipients()
    try:
        activity = {a.recipient: a for a in await ctx.log.recipient_activity(now - ACTIVITY_WINDOW)}
    except StoreUnavailable:
        return _unavailable()
    depths = await _depths(ctx, [*(r.queue for r in recipients), *ctx.shared_queues])
    states = []
    for live in recipients:
        seen = activity.get(live.recipient, RecipientActivity(live.recipient))
        oldest = seen.oldest_waiting_since
        states.append(
            RecipientState(
                recipient=live.recipient,
                kind=live.kind,
                agency_id=live.agency_id,
                delivering=live.circuit is not None,
                circuit=None if live.circuit is None else CircuitState(live.circuit.value),
                subscription_status=live.subscription_status,
                queue=live.queue,
                queued=None if depths is None else depths.get(live.queue),
                waiting=seen.waiting,
                oldest_waiting_at=oldest,
                oldest_waiting_age_s=None if oldest is None else (now - oldest).total_seconds(),
                delivered_last_hour=seen.delivered,
                failed_last_hour=seen.failed,
            )
        )
    shared = [
        QueueDepth(queue=q, messages=None if depths is None else depths.get(q))
        for q in ctx.shared_queues
    ]
    page = RecipientsPage(at=now, recipients=states, shared_queues=shared)
    return web.json_response(text=page.model_dump_json())


def _at_risk_entry(item: AtRisk, now: datetime) -> AtRiskEntry:
    try:
        kecamatan: str | None = kecamatan_by_code(item.kecamatan_code).name
    except ValueError:
        kecamatan = None
    standard = STANDARDS.get(item.step) if item.step is not None else None
    return AtRiskEntry(
        kind=item.kind,
        case_id=item.case_id,
        kecamatan=kecamatan,
        step=item.step,
        activity=None if standard is None else standard.activity,
        recipient=item.recipient,
        distribution_id=item.distribution_id,
        started_at=item.started_at,
        at_risk_at=item.warning_at,
        deadline_at=item.deadline_at,
        seconds_left=(item.deadline_at - now).total_seconds(),
    )


async def get_at_risk(request: web.Request) -> web.Response:
    """Open SOP steps and undelivered messages past 80 % of their time, most urgent first."""
    ctx = request.app[OPS].value
    now = ctx.clock()
    try:
        found = await ctx.log.at_risk(now, missed_since=now - MISSED_SHOWN_FOR)
    except StoreUnavailable:
        return _unavailable()
    page = AtRiskPage(at=now, entries=[_at_risk_entry(item, now) for item in found])
    return web.json_response(text=page.model_dump_json())


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


_TIME = {"type": "string", "format": "date-time"}
_LOG_FILTERS = (
    Parameter("case_id", "Only this case's attempts."),
    Parameter("distribution_id", "Only this message's attempts."),
    Parameter("q", "A case id (urn:…) or a distribution id."),
    Parameter("recipient", "Only this recipient's attempts (c112, a subscription id)."),
    Parameter(
        "outcome",
        "Only attempts with this outcome.",
        {"type": "string", "enum": [o.value for o in AttemptOutcome]},
    ),
    Parameter("since", "Attempts at or after this time (ISO 8601 with offset).", _TIME),
    Parameter("until", "Attempts before this time (ISO 8601 with offset).", _TIME),
    Parameter(
        "after_id",
        "Only attempts after this log id (a cursor: `last_id` of a page), oldest first.",
        {"type": "integer", "minimum": 0, "maximum": MAX_CURSOR},
    ),
    Parameter(
        "limit",
        "At most this many attempts (default 100).",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    ),
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
        "The delivery log, newest first; with after_id, the attempts after that cursor.",
        roles=frozenset({ApiRole.OPS}),
        parameters=_LOG_FILTERS,
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
        "Server-Sent Events, one `attempt` event per new attempt (Last-Event-ID resumes).",
        roles=frozenset({ApiRole.OPS}),
        parameters=(
            *_LOG_FILTERS,
            Parameter(
                "Last-Event-ID",
                "The last event id received: the stream resumes after it.",
                where="header",
            ),
        ),
        answers={
            200: Answer("An endless text/event-stream.", media_type="text/event-stream"),
            400: problem_answer("Bad filter."),
        },
    ),
    Route(
        "GET",
        "/v1/ops/recipients",
        get_recipients,
        "listRecipientStates",
        "Each recipient (112, its failover, every webhook subscription): circuit breaker, "
        "messages queued and not yet settled, the oldest one's age, deliveries and failed "
        "attempts in the last hour; and the shared retry and parking queues.",
        roles=frozenset({ApiRole.OPS}),
        answers={
            200: Answer("Every recipient.", RecipientsPage),
            503: problem_answer("The store is unavailable."),
        },
    ),
    Route(
        "GET",
        "/v1/ops/at-risk",
        get_at_risk,
        "listAtRisk",
        "Open SOP steps and undelivered messages past 80 % of their time, with the "
        "seconds left to their deadline (negative when missed; missed ones for 24 h).",
        roles=frozenset({ApiRole.OPS}),
        answers={
            200: Answer("What is at risk, most urgent first.", AtRiskPage),
            503: problem_answer("The store is unavailable."),
        },
    ),
)
