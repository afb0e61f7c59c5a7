"""The SOP 357 case API: staff events, the case view, the compliance report, SIMFONI export."""

from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from aiohttp import web
from pydantic import BaseModel

from contracts.problem import PROBLEM_MEDIA_TYPE, FieldError, Problem
from contracts.workflow import (
    CaseEventRequest,
    CaseView,
    SimfoniExport,
    SlaReport,
    StaffRole,
)
from gateway import case_views
from gateway.access import ApiRole
from gateway.adapters.auth import ACTOR, ROLE
from gateway.adapters.problems import PROBLEM_BASE, problem_response
from gateway.adapters.request_body import (
    BodyRefused,
    parse_model,
    read_json_bytes,
    refused_problem,
)
from gateway.adapters.routes import Answer, Parameter, Route, problem_answer
from gateway.adapters.slot import Slot
from gateway.cases import CaseNotFound, CaseService
from gateway.errors import StoreUnavailable
from gateway.workflow import IllegalTransition, InvalidEvent, StepNotYours

log = structlog.get_logger(__name__)

MAX_EVENT_BYTES = 64 * 1024
DEFAULT_REPORT_PERIOD = timedelta(days=30)
CSV_MEDIA_TYPE = "text/csv"
STAFF = frozenset({ApiRole.SATGAS, ApiRole.HEAD})


CASES = web.AppKey("cases", Slot[CaseService])


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=model.model_dump_json(by_alias=True).encode(),
        content_type="application/json",
    )


def _conflict(exc: IllegalTransition) -> web.Response:
    problem = Problem.model_validate(
        {
            "type": PROBLEM_BASE + "illegal-transition",
            "title": "Conflict",
            "status": 409,
            "detail": str(exc),
            "state": exc.state.value,
            "allowed_events": [e.value for e in exc.allowed],
        }
    )
    return web.Response(
        status=409,
        body=problem.model_dump_json(exclude_none=True).encode(),
        content_type=PROBLEM_MEDIA_TYPE,
    )


def _not_found(case_id: str) -> web.Response:
    return problem_response(404, slug="case-not-found", detail="No such case is kept.")


def _store_down() -> web.Response:
    return problem_response(
        503,
        slug="store-unavailable",
        detail="The store is unavailable.",
        headers={"Retry-After": "5"},
    )


async def post_case_event(request: web.Request) -> web.Response:
    service = request.app[CASES].value
    case_id = request.match_info["case_id"]
    try:
        raw = await read_json_bytes(request, MAX_EVENT_BYTES)
        event = parse_model(
            raw, CaseEventRequest, slug="invalid-event", detail="The event has invalid fields."
        )
    except BodyRefused as refused:
        return refused_problem(refused)
    role = StaffRole(request[ROLE].value)
    try:
        snapshot = await service.record_event(case_id, event, role, via=request[ACTOR].id)
    except CaseNotFound:
        return _not_found(case_id)
    except StepNotYours as exc:
        return problem_response(403, slug="not-your-step", detail=str(exc))
    except InvalidEvent as exc:
        return problem_response(
            422, slug="invalid-event", detail="The event has invalid fields.", errors=exc.errors
        )
    except IllegalTransition as exc:
        log.info("case.event_refused", case_id=case_id, type=event.type.value, state=exc.state)
        return _conflict(exc)
    except StoreUnavailable:
        log.error("store_unavailable")
        return _store_down()
    try:
        view = await service.view_of(snapshot, full=True, reader=request[ACTOR])
    except StoreUnavailable:
        log.error("store_unavailable")
        return _store_down()
    log.info("case.event", case_id=case_id, type=event.type.value, role=role, state=view.state)
    return _json(view)


async def get_case(request: web.Request) -> web.Response:
    service = request.app[CASES].value
    case_id = request.match_info["case_id"]
    try:
        view = await service.view(case_id, full=request[ROLE] in STAFF, reader=request[ACTOR])
    except CaseNotFound:
        return _not_found(case_id)
    except StoreUnavailable:
        return _store_down()
    return _json(view)


def _period(request: web.Request, now: datetime) -> tuple[datetime, datetime]:
    """``from`` and ``to`` (ISO 8601 with offset); default the last 30 days."""
    errors = []
    bounds: dict[str, datetime | None] = {}
    for name in ("from", "to"):
        text = request.query.get(name)
        if text is None:
            bounds[name] = None
            continue
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            errors.append(FieldError(pointer=f"/{name}", detail="not an ISO 8601 time with offset"))
        bounds[name] = moment
    end = bounds["to"] or now
    start = bounds["from"] or end - DEFAULT_REPORT_PERIOD
    if not errors and start >= end:
        errors.append(FieldError(pointer="/from", detail="must be before to"))
    if errors:
        raise _BadQuery(errors)
    return start, end


class _BadQuery(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("bad query")
        self.errors = errors


def _wants_csv(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return CSV_MEDIA_TYPE in accept and "application/json" not in accept


def _csv(text: str, filename: str) -> web.Response:
    return web.Response(
        text=text,
        content_type=CSV_MEDIA_TYPE,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _bad_query(exc: _BadQuery) -> web.Response:
    return problem_response(
        400, slug="invalid-query", detail="Invalid query parameters.", errors=exc.errors
    )


async def get_sla_report(request: web.Request) -> web.Response:
    service = request.app[CASES].value
    try:
        start, end = _period(request, service.clock())
        report = await service.sla_report(start, end)
    except _BadQuery as exc:
        return _bad_query(exc)
    except StoreUnavailable:
        return _store_down()
    if _wants_csv(request):
        return _csv(case_views.sla_report_csv(report), "sla-report.csv")
    return _json(report)


async def get_simfoni_export(request: web.Request) -> web.Response:
    service = request.app[CASES].value
    try:
        start, end = _period(request, service.clock())
        export = await service.simfoni_export(start, end)
    except _BadQuery as exc:
        return _bad_query(exc)
    except StoreUnavailable:
        return _store_down()
    if _wants_csv(request):
        return _csv(case_views.simfoni_csv(export), "simfoni-ppa.csv")
    return _json(export)


_TIME = {"type": "string", "format": "date-time"}
_PERIOD = (
    Parameter("from", "Start (ISO 8601 with offset); default 30 days before `to`.", _TIME),
    Parameter("to", "End, not included (ISO 8601 with offset); default now.", _TIME),
)

CASE_ROUTES: Sequence[Route] = (
    Route(
        "POST",
        "/v1/cases/{case_id}/events",
        post_case_event,
        "postCaseEvent",
        "Report a step of SOP 357 on a case; answers the case after it.",
        request=CaseEventRequest,
        answers={
            200: Answer("The case after the event.", CaseView),
            403: problem_answer("The step is not the token's role's, or the token may not call."),
            404: problem_answer("No such case."),
            409: problem_answer(
                "The case's state does not allow this event; `state` and `allowed_events` say "
                "what does."
            ),
            422: problem_answer("Invalid fields, each named by its JSON pointer."),
        },
        roles=STAFF,
    ),
    Route(
        "GET",
        "/v1/cases/{case_id}",
        get_case,
        "getCase",
        "A case: state, history, each SOP step (entered, due, done, elapsed, status) and "
        "its delivery (per message: delivered, last outcome, at risk, deadline missed, "
        "failover, 112's receipt); S2/S3 fields only for satgas and head.",
        answers={200: Answer("The case.", CaseView), 404: problem_answer("No such case.")},
        roles=STAFF | {ApiRole.OPS},
    ),
    Route(
        "GET",
        "/v1/reports/sla",
        get_sla_report,
        "getSlaReport",
        "Compliance with SOP 357's time standards of the cases received in [from, to): per "
        "step and per path; JSON, or text/csv by Accept.",
        answers={
            200: Answer("The report (also as text/csv).", SlaReport, also=("text/csv",)),
            400: problem_answer("Bad from/to."),
        },
        roles=STAFF | {ApiRole.OPS},
        parameters=_PERIOD,
    ),
    Route(
        "GET",
        "/v1/exports/simfoni",
        get_simfoni_export,
        "getSimfoniExport",
        "The cases closed in [from, to) in SIMFONI-PPA's categories, one row per victim; "
        "JSON, or text/csv by Accept.",
        answers={
            200: Answer("The export (also as text/csv).", SimfoniExport, also=("text/csv",)),
            400: problem_answer("Bad from/to."),
        },
        roles=STAFF,
        parameters=_PERIOD,
    ),
)
