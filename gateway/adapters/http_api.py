"""Intake from Si Lacak Perak, health, readiness and metrics."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from contracts.case import CaseAccepted
from contracts.si_lacak_perak import LaporanSiLacakPerak
from gateway import signing
from gateway.adapters.problems import problem_response
from gateway.adapters.request_body import (
    DEFAULT_BODY_TIMEOUT_S,
    BodyRefused,
    parse_json,
    read_json_bytes,
)
from gateway.adapters.routes import Answer, Route, problem_answer
from gateway.errors import (
    InvalidReport,
    NotReady,
    SignatureInvalid,
    StoreUnavailable,
    WebhookReplayed,
)
from gateway.intake import IntakeService
from gateway.model import SignedMessage

log = structlog.get_logger(__name__)

Check = Callable[[], Awaitable[None]]


class HttpContext:
    """What the handlers need. Built with the app; the services are bound at startup."""

    def __init__(
        self,
        *,
        max_body_bytes: int,
        registry: CollectorRegistry,
        clock: Callable[[], datetime],
        notes: Mapping[str, str] | None = None,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.registry = registry
        self.clock = clock
        self.notes = dict(notes or {})
        self.inbound_secrets: tuple[str, ...] = ()
        self.readiness_checks: Mapping[str, Check] = {}
        self.before_scrape: list[Callable[[], Awaitable[None]]] = []
        self._intake: IntakeService | None = None
        self.intake_outcomes = Counter(
            "gateway_intake_total",
            "Reports received, by outcome.",
            ["source", "outcome"],
            registry=registry,
        )
        # at 0 from the start, so that an alert sees the first one (``adapters/metrics.py``)
        self.intake_outcomes.labels("si-lacak-perak", "store-unavailable")

    def bind(
        self,
        *,
        intake: IntakeService,
        inbound_secrets: tuple[str, ...],
        readiness_checks: Mapping[str, Check],
    ) -> None:
        self._intake = intake
        self.inbound_secrets = inbound_secrets
        self.readiness_checks = readiness_checks

    @property
    def intake(self) -> IntakeService:
        if self._intake is None:
            raise NotReady("the gateway is still starting")
        return self._intake


CONTEXT = web.AppKey("http_context", HttpContext)


def _refusal(ctx: HttpContext, status: int, slug: str, detail: str, **kwargs: Any) -> web.Response:
    ctx.intake_outcomes.labels("si-lacak-perak", slug).inc()
    return problem_response(status, slug=slug, detail=detail, **kwargs)


def _signed_message(ctx: HttpContext, msg_id: str, signed_at: int) -> SignedMessage:
    """A verified message as the replay guard remembers it.

    A message is its ``webhook-id`` with its signed timestamp: a sender retrying signs
    again with a fresh timestamp (its retry is answered by ``id_laporan``), while a
    captured request sent again cannot change either without the secret. It is
    remembered by the write that takes or quarantines what it carried, so a report the
    store could not take may be sent again as it was.
    """
    keep_until = datetime.fromtimestamp(signed_at, UTC) + timedelta(
        seconds=signing.DEFAULT_TOLERANCE_S
    )
    return SignedMessage(msg_id, signed_at, seen_at=ctx.clock(), keep_until=keep_until)


def _replayed(ctx: HttpContext) -> web.Response:
    detail = "replay: this webhook-id with this webhook-timestamp was taken before"
    return _refusal(ctx, 401, "webhook-replayed", detail)


def _store_unavailable(ctx: HttpContext) -> web.Response:
    log.error("store_unavailable")
    return _refusal(
        ctx,
        503,
        "store-unavailable",
        "The report could not be stored durably; send it again.",
        headers={"Retry-After": "5"},
    )


async def post_si_lacak_perak(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    raw = b""
    message: SignedMessage | None = None
    try:
        raw = await read_json_bytes(request, ctx.max_body_bytes, ctx.body_timeout_s)
        msg_id, signed_at = signing.verify(ctx.inbound_secrets, request.headers, raw, ctx.clock())
        message = _signed_message(ctx, msg_id, signed_at)
        report = parse_json(raw)
    except BodyRefused as refused:
        try:
            await ctx.intake.refuse(
                refused.raw,
                reason=refused.slug,
                errors=refused.errors,
                content_type=request.content_type,
                message=message,
            )
        except WebhookReplayed:
            return _replayed(ctx)
        errors = list(refused.errors) or None
        return _refusal(ctx, refused.status, refused.slug, refused.detail, errors=errors)
    except SignatureInvalid as exc:
        await ctx.intake.refuse(raw, reason="signature_invalid", content_type=request.content_type)
        return _refusal(ctx, 401, "signature-invalid", str(exc))
    structlog.contextvars.bind_contextvars(webhook_id=msg_id)
    try:
        result = await ctx.intake.receive_si_lacak_perak(raw, report, message=message)
    except WebhookReplayed:
        return _replayed(ctx)
    except InvalidReport as exc:
        log.info("report_refused", fields=[e.pointer for e in exc.errors])
        return _refusal(
            ctx, 422, "invalid-report", "The report has invalid fields.", errors=exc.errors
        )
    except StoreUnavailable:
        return _store_unavailable(ctx)
    structlog.contextvars.bind_contextvars(case_id=result.case_id)
    outcome = "duplicate" if result.duplicate else "accepted"
    ctx.intake_outcomes.labels("si-lacak-perak", outcome).inc()
    log.info("report_" + outcome, needs_other_agencies=result.needs_other_agencies)
    body = CaseAccepted(
        case_id=result.case_id,
        duplicate=result.duplicate,
        received_at=result.received_at,
        needs_other_agencies=result.needs_other_agencies,
        c112_deadline_at=result.c112_deadline_at,
    )
    return web.json_response(
        body.model_dump(mode="json", exclude_none=True),
        status=202,
        headers={"Location": f"/v1/cases/{result.case_id}"},
    )


async def get_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "up"})


async def get_readyz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    checks: dict[str, str] = {}
    for name, check in ctx.readiness_checks.items():
        try:
            await check()
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency means not ready
            checks[name] = f"down: {type(exc).__name__}"
        else:
            checks[name] = "up"
    ready = bool(checks) and all(v == "up" for v in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
    if ctx.notes:
        body["notes"] = dict(ctx.notes)
    return web.json_response(body, status=200 if ready else 503)


async def get_metrics(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    for refresh in ctx.before_scrape:
        await refresh()
    response = web.Response(body=generate_latest(ctx.registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


INTAKE_ROUTES: Sequence[Route] = (
    Route(
        "POST",
        "/v1/reports/si-lacak-perak",
        post_si_lacak_perak,
        "postLaporanSiLacakPerak",
        "Accept a report from Si Lacak Perak (Standard Webhooks signed).",
        security="inboundWebhook",
        request=LaporanSiLacakPerak,
        answers={
            202: Answer(
                "Accepted and stored durably; the same id_laporan answers the same case.",
                CaseAccepted,
            ),
            400: problem_answer("The body is not UTF-8 JSON."),
            401: problem_answer(
                "Missing, bad or stale signature, or a replay of a message already taken."
            ),
            408: problem_answer("The body did not arrive in time."),
            413: problem_answer("The body is too large."),
            415: problem_answer("The body is not application/json."),
            422: problem_answer(
                "The report has invalid fields, or its JSON exceeds the limits on depth, "
                "array length, object size or string length; each place is named by its "
                "JSON pointer."
            ),
            503: problem_answer(
                "The store could not make the report durable; retry after Retry-After."
            ),
        },
    ),
    Route(
        "GET",
        "/healthz",
        get_healthz,
        "getHealth",
        "The process is up.",
        answers={200: Answer("Up.")},
        public=True,
    ),
    Route(
        "GET",
        "/readyz",
        get_readyz,
        "getReadiness",
        "The store answers; the broker is connected and its queues are declared.",
        answers={200: Answer("Ready."), 503: Answer("A dependency is not ready.")},
        public=True,
    ),
    Route(
        "GET",
        "/metrics",
        get_metrics,
        "getMetrics",
        "Prometheus metrics (text exposition format).",
        answers={200: Answer("Metrics.", media_type="text/plain")},
        public=True,
    ),
)
