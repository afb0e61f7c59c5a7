"""112's receipts, the parking lot and replay, and a case's delivery record.

``POST /v1/c112/receipts`` is authenticated by its Standard Webhooks signature (112
signs with ``GATEWAY_C112_SECRET``); the other routes are for the ops role.
"""

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contracts.problem import FieldError
from contracts.receipt import Receipt, ReceiptStatus
from gateway import signing
from gateway.access import ApiRole
from gateway.adapters.auth import ACTOR
from gateway.adapters.problems import problem_response
from gateway.adapters.request_body import (
    BodyRefused,
    parse_model,
    read_json_bytes,
    refused_problem,
)
from gateway.adapters.routes import Answer, Parameter, Route, problem_answer
from gateway.audit import Actor
from gateway.errors import GatewayError, NotReady, SignatureInvalid, StoreUnavailable
from gateway.model import DeliveryAttempt, ParkedMessage, ParkedSelector, ReceiptRecord

log = structlog.get_logger(__name__)

OPS = frozenset({ApiRole.OPS})
MAX_RECEIPT_BYTES = 16 * 1024


class DeliveryStore(Protocol):
    async def record_receipt(self, receipt: ReceiptRecord) -> tuple[ReceiptRecord, bool]: ...

    async def receipts(self, *, case_id: str) -> list[ReceiptRecord]: ...

    async def parked(self, selector: ParkedSelector, limit: int = 1000) -> list[ParkedMessage]: ...

    async def delivery_log(
        self,
        *,
        case_id: str | None = None,
        distribution_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryAttempt]: ...


Replay = Callable[[ParkedSelector, Actor], Awaitable[list[ParkedMessage]]]


class DeliveryContext:
    """What these handlers need; bound at startup by the composition root."""

    def __init__(self, *, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self._store: DeliveryStore | None = None
        self._replay: Replay | None = None
        self.c112_secrets: tuple[str, ...] = ()

    def bind(self, *, store: DeliveryStore, replay: Replay, c112_secrets: tuple[str, ...]) -> None:
        self._store = store
        self._replay = replay
        self.c112_secrets = c112_secrets

    @property
    def store(self) -> DeliveryStore:
        if self._store is None:
            raise NotReady("the gateway is still starting")
        return self._store

    @property
    def replay(self) -> Replay:
        if self._replay is None:
            raise NotReady("the gateway is still starting")
        return self._replay


DELIVERY = web.AppKey("delivery_context", DeliveryContext)


class ReceiptAccepted(BaseModel):
    distribution_id: str
    status: ReceiptStatus
    case_id: str | None = Field(description="null when the distribution id is not known here.")
    duplicate: bool = Field(description="This webhook-id was recorded before.")


class ReplayRequest(BaseModel):
    """Which parked messages to replay; ``all`` must be true when nothing else is given."""

    model_config = ConfigDict(extra="forbid")

    distribution_id: str | None = Field(None, max_length=128)
    case_id: str | None = Field(None, max_length=128)
    recipient: str | None = Field(None, max_length=64)
    all: bool = False


class ParkedView(BaseModel):
    parked_id: int
    distribution_id: str
    recipient: str
    case_id: str
    sequence: int
    deadline_at: datetime | None
    parked_at: datetime
    attempt: int
    tries: int
    reason: str
    error_class: str | None


class AttemptView(BaseModel):
    distribution_id: str
    recipient: str
    attempt: int
    at: datetime
    outcome: str
    latency_ms: float | None
    status_code: int | None
    error_class: str | None
    next_try_at: datetime | None
    reason: str | None


class ParkedDetail(ParkedView):
    attempts: list[AttemptView] = Field(
        description="The delivery log of this message, oldest first."
    )


class ParkedList(BaseModel):
    parked: list[ParkedDetail]


class ReplayAnswer(BaseModel):
    replayed: list[str] = Field(description="Distribution ids put back, oldest first.")


class ReceiptView(BaseModel):
    distribution_id: str
    status: str
    at: datetime
    received_at: datetime
    by_role: str | None
    ticket: str | None
    reason: str | None


class CaseDelivery(BaseModel):
    """Technical delivery (every push) and functional receipts (what 112 said) apart."""

    case_id: str
    attempts: list[AttemptView]
    receipts: list[ReceiptView]
    parked: list[ParkedView]


def _parked_view(p: ParkedMessage) -> dict[str, Any]:
    return {
        "parked_id": p.parked_id,
        "distribution_id": p.distribution_id,
        "recipient": p.recipient,
        "case_id": p.case_id,
        "sequence": p.sequence,
        "deadline_at": p.deadline_at,
        "parked_at": p.parked_at,
        "attempt": p.attempt,
        "tries": p.tries,
        "reason": p.reason,
        "error_class": p.error_class,
    }


def _attempt_view(a: DeliveryAttempt) -> AttemptView:
    return AttemptView(
        distribution_id=a.distribution_id,
        recipient=a.recipient,
        attempt=a.attempt,
        at=a.at,
        outcome=a.outcome.value,
        latency_ms=a.latency_ms,
        status_code=a.status_code,
        error_class=a.error_class,
        next_try_at=a.next_try_at,
        reason=a.reason,
    )


def _unavailable() -> web.Response:
    return problem_response(
        503,
        slug="store-unavailable",
        detail="The store is unavailable.",
        headers={"Retry-After": "5"},
    )


async def post_c112_receipt(request: web.Request) -> web.Response:
    ctx = request.app[DELIVERY]
    try:
        raw = await read_json_bytes(request, MAX_RECEIPT_BYTES)
        webhook_id, _ = signing.verify(ctx.c112_secrets, request.headers, raw, ctx.clock())
        receipt = parse_model(
            raw, Receipt, slug="invalid-receipt", detail="The receipt has invalid fields."
        )
    except BodyRefused as refused:
        return refused_problem(refused)
    except SignatureInvalid as exc:
        return problem_response(401, slug="signature-invalid", detail=str(exc))
    try:
        receipt.at.astimezone(UTC)
    except (OverflowError, ValueError):
        return problem_response(
            422,
            slug="invalid-receipt",
            detail="The receipt has invalid fields.",
            errors=[FieldError(pointer="/at", detail="not a representable UTC time")],
        )
    record = ReceiptRecord(
        webhook_id=webhook_id,
        distribution_id=receipt.distribution_id,
        status=receipt.status.value,
        at=receipt.at,
        received_at=ctx.clock(),
        by_role=receipt.by.role if receipt.by else None,
        by_id=receipt.by.id if receipt.by else None,
        ticket=receipt.ticket,
        reason=receipt.reason,
    )
    try:
        stored, duplicate = await ctx.store.record_receipt(record)
    except StoreUnavailable:
        log.error("store_unavailable")
        return _unavailable()
    fields = {
        "distribution_id": stored.distribution_id,
        "case_id": stored.case_id,
        "status": stored.status,
        "duplicate": duplicate,
    }
    if stored.case_id is None:
        log.warning("c112.receipt_unknown_distribution", **fields)
    if receipt.status is ReceiptStatus.REJECTED and not duplicate:
        # the reason is 112's free text and may name people: it stays in the store
        log.error("ops_alert", alert="c112.receipt_rejected", **fields)
    else:
        log.info("c112.receipt", **fields)
    body = ReceiptAccepted(
        distribution_id=stored.distribution_id,
        status=receipt.status,
        case_id=stored.case_id,
        duplicate=duplicate,
    )
    return web.json_response(body.model_dump(mode="json"), status=202)


def _selector(request: web.Request) -> ParkedSelector:
    q = request.query
    return ParkedSelector(
        distribution_id=q.get("distribution_id"),
        case_id=q.get("case_id"),
        recipient=q.get("recipient"),
    )


async def get_parked(request: web.Request) -> web.Response:
    ctx = request.app[DELIVERY]
    try:
        parked = await ctx.store.parked(_selector(request))
        details = []
        for p in parked:
            log_rows = await ctx.store.delivery_log(distribution_id=p.distribution_id, limit=1000)
            attempts = [_attempt_view(a) for a in reversed(log_rows) if a.recipient == p.recipient]
            details.append(ParkedDetail(**_parked_view(p), attempts=attempts))
    except StoreUnavailable:
        return _unavailable()
    return web.json_response(ParkedList(parked=details).model_dump(mode="json"))


async def post_replay(request: web.Request) -> web.Response:
    ctx = request.app[DELIVERY]
    try:
        raw = await read_json_bytes(request, MAX_RECEIPT_BYTES)
        wanted = parse_model(
            raw, ReplayRequest, slug="invalid-request", detail="Invalid replay request."
        )
    except BodyRefused as refused:
        return refused_problem(refused)
    selector = ParkedSelector(
        distribution_id=wanted.distribution_id, case_id=wanted.case_id, recipient=wanted.recipient
    )
    if selector == ParkedSelector() and not wanted.all:
        return problem_response(
            422,
            slug="invalid-request",
            detail="Name a distribution_id, case_id or recipient, or set all to true.",
        )
    try:
        replayed = await ctx.replay(selector, request[ACTOR])
    except StoreUnavailable:
        return _unavailable()
    except GatewayError as exc:  # not ready, or the broker did not confirm a publish
        log.warning("ops.replay_failed", error_class=type(exc).__name__)
        return problem_response(
            503,
            slug="not-ready",
            detail="The broker or the store is unavailable; what was confirmed stays replayed.",
            headers={"Retry-After": "5"},
        )
    log.info("ops.replay", count=len(replayed))
    answer = ReplayAnswer(replayed=[p.distribution_id for p in replayed])
    return web.json_response(answer.model_dump(mode="json"))


async def get_case_delivery(request: web.Request) -> web.Response:
    ctx = request.app[DELIVERY]
    case_id = request.match_info["case_id"]
    try:
        attempts = await ctx.store.delivery_log(case_id=case_id, limit=1000)
        receipts = await ctx.store.receipts(case_id=case_id)
        parked = await ctx.store.parked(ParkedSelector(case_id=case_id))
    except StoreUnavailable:
        return _unavailable()
    body = CaseDelivery(
        case_id=case_id,
        attempts=[_attempt_view(a) for a in reversed(attempts)],
        receipts=[
            ReceiptView(
                distribution_id=r.distribution_id,
                status=r.status,
                at=r.at,
                received_at=r.received_at,
                by_role=r.by_role,
                ticket=r.ticket,
                reason=r.reason,
            )
            for r in receipts
        ],
        parked=[ParkedView(**_parked_view(p)) for p in parked],
    )
    return web.json_response(body.model_dump(mode="json"))


DELIVERY_ROUTES: Sequence[Route] = (
    Route(
        "POST",
        "/v1/c112/receipts",
        post_c112_receipt,
        "postC112Receipt",
        "A functional receipt from 112 for one distribution (Standard Webhooks signed).",
        security="inboundWebhook",
        request=Receipt,
        answers={
            202: Answer("Recorded (or recorded before: duplicate).", ReceiptAccepted),
            400: problem_answer("The body is not UTF-8 JSON."),
            401: problem_answer("Missing, bad or stale signature."),
            413: problem_answer("The body is too large."),
            415: problem_answer("The body is not application/json."),
            422: problem_answer("The receipt has invalid fields."),
            503: problem_answer("The store is unavailable; retry after Retry-After."),
        },
    ),
    Route(
        "GET",
        "/v1/ops/parked",
        get_parked,
        "getParked",
        "Parked messages with their reason and attempt history.",
        answers={200: Answer("Parked messages, oldest first.", ParkedList)},
        roles=OPS,
        parameters=(
            Parameter("distribution_id", "Only this message."),
            Parameter("case_id", "Only this case's messages."),
            Parameter("recipient", "Only this recipient's messages (c112, a subscription id)."),
        ),
    ),
    Route(
        "POST",
        "/v1/ops/replay",
        post_replay,
        "postReplay",
        "Put parked messages back on their delivery queue: a new attempt, the same webhook-id.",
        request=ReplayRequest,
        answers={
            200: Answer("What was put back.", ReplayAnswer),
            422: problem_answer("Nothing selected."),
            503: problem_answer("The store or the broker is unavailable."),
        },
        roles=OPS,
    ),
    Route(
        "GET",
        "/v1/ops/cases/{case_id}/delivery",
        get_case_delivery,
        "getCaseDelivery",
        "A case's delivery: every push attempt, 112's receipts and what is parked.",
        answers={200: Answer("Attempts, receipts and parked messages.", CaseDelivery)},
        roles=OPS,
    ),
)
