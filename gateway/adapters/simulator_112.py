"""The Tangerang Siaga 112 command-center simulator, for the demo, drills and tests.

``POST /`` and ``POST /v1/messages`` take signed pushes (Standard Webhooks), record
them in memory and answer as the current mode says:

    ok       202 {"status": "received"}
    fail     ``status`` (503 unless set), with ``Retry-After: retry_after`` when set
    slow     waits ``delay_ms`` then answers as ok
    reject   400 {"reason": reason}
    down     closes the connection without answering: the sender sees a
             disconnection, as when 112's server dies mid-request

A bad signature is answered 401 in every mode. ``fail_next: N`` makes the mode last
for the next N signed messages only, then the simulator is back to ok.

Control endpoints (no auth: it is a drill tool; bind it to 127.0.0.1):
``GET|DELETE /_sim/messages`` (``?case_id=`` filters), ``GET|PUT /_sim/mode``,
``GET /_sim/stats``.

With ``receipt_url`` set, every accepted message is followed by a signed receipt
(``contracts.receipt.Receipt``) posted there in the background.
"""

import asyncio
import contextlib
import json
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.receipt import Receipt, ReceiptBy, ReceiptStatus
from gateway.errors import SignatureInvalid
from gateway.signing import split_secrets, verify, webhook_headers

MAX_RECORDED = 10_000
RECEIPT_TIMEOUT_S = 10.0


class SimMode(StrEnum):
    OK = "ok"
    FAIL = "fail"
    SLOW = "slow"
    REJECT = "reject"
    DOWN = "down"


class ModeSettings(BaseModel):
    """The body of ``PUT /_sim/mode``; fields a mode does not use are ignored by it."""

    model_config = ConfigDict(extra="forbid")

    mode: SimMode = SimMode.OK
    status: int = Field(503, ge=400, le=599)
    retry_after: int | None = Field(None, ge=0)
    delay_ms: int = Field(500, ge=0, le=120_000)
    reason: str = Field("rejected by the 112 simulator", max_length=500)
    fail_next: int | None = Field(None, ge=1)


@dataclass(slots=True)
class Recorded:
    """One request the simulator took, with how it answered (``None``: dropped)."""

    received_at: datetime
    webhook_id: str | None
    webhook_timestamp: str | None
    webhook_signature: str | None
    signature_valid: bool
    raw: str
    body: Any
    answered: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at.isoformat(),
            "headers": {
                "webhook-id": self.webhook_id,
                "webhook-timestamp": self.webhook_timestamp,
                "webhook-signature": self.webhook_signature,
            },
            "signature_valid": self.signature_valid,
            "raw": self.raw,
            "body": self.body,
            "answered": self.answered,
        }


@dataclass(slots=True)
class SimulatorState:
    """What the simulator was sent and how it behaves now."""

    secrets: list[str]
    settings: ModeSettings = field(default_factory=ModeSettings)
    remaining: int | None = None
    recorded: deque[Recorded] = field(default_factory=lambda: deque(maxlen=MAX_RECORDED))
    receipt_url: str | None = None
    receipt_secrets: list[str] = field(default_factory=list)
    receipts_started: int = 0
    receipts_sent: int = 0
    receipts_failed: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def set_mode(self, settings: ModeSettings) -> None:
        self.settings = settings
        self.remaining = settings.fail_next

    def next_mode(self) -> SimMode:
        """The mode for the message being answered; counts ``fail_next`` down."""
        if self.remaining is None:
            return self.settings.mode
        if self.remaining == 0:
            return SimMode.OK
        self.remaining -= 1
        return self.settings.mode

    def mode_json(self) -> dict[str, Any]:
        return {**self.settings.model_dump(mode="json"), "remaining": self.remaining}

    def stats(self) -> dict[str, int]:
        """Counts over the messages kept; ``duplicates`` are repeated webhook-ids."""
        signed = [r for r in self.recorded if r.signature_valid]
        accepted = Counter(
            r.webhook_id for r in signed if r.answered is not None and 200 <= r.answered < 300
        )
        distinct = len({r.webhook_id for r in signed})
        return {
            "received": len(signed),
            "distinct": distinct,
            "duplicates": len(signed) - distinct,
            "accepted": accepted.total(),
            "accepted_duplicates": accepted.total() - len(accepted),
            "invalid_signature": len(self.recorded) - len(signed),
            "receipts_sent": self.receipts_sent,
            "receipts_failed": self.receipts_failed,
        }


SIM_STATE: Final = web.AppKey("sim_state", SimulatorState)
RECEIPT_SESSION: Final = web.AppKey("sim_receipt_session", aiohttp.ClientSession)


def create_simulator_app(
    *,
    secret: str,
    mode: SimMode = SimMode.OK,
    receipt_url: str | None = None,
    receipt_secret: str | None = None,
) -> web.Application:
    """The simulator; ``secret`` may hold several space-separated secrets (rotation).

    Receipts are signed with ``receipt_secret``, or with the first of ``secret``.
    """
    secrets = split_secrets(secret)
    if not secrets:
        raise ValueError("the 112 simulator needs a whsec_ secret")
    state = SimulatorState(
        secrets=secrets,
        receipt_url=receipt_url,
        receipt_secrets=split_secrets(receipt_secret) if receipt_secret else secrets[:1],
    )
    state.set_mode(ModeSettings(mode=mode))
    app = web.Application()
    app[SIM_STATE] = state
    app.router.add_post("/", _receive)
    app.router.add_post("/v1/messages", _receive)
    app.router.add_get("/_sim/messages", _list_messages)
    app.router.add_delete("/_sim/messages", _clear_messages)
    app.router.add_get("/_sim/mode", _get_mode)
    app.router.add_put("/_sim/mode", _put_mode)
    app.router.add_get("/_sim/stats", _stats)
    if receipt_url is not None:
        app.cleanup_ctx.append(_receipt_session)
    app.cleanup_ctx.append(_background_tasks)  # cleaned up first: tasks end before the session
    return app


async def run_simulator(
    host: str,
    port: int,
    secret: str,
    *,
    mode: SimMode = SimMode.OK,
    receipt_url: str | None = None,
    receipt_secret: str | None = None,
) -> None:
    """Serve the simulator on ``host:port`` until cancelled."""
    app = create_simulator_app(
        secret=secret, mode=mode, receipt_url=receipt_url, receipt_secret=receipt_secret
    )
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def _receive(request: web.Request) -> web.StreamResponse:
    state = request.app[SIM_STATE]
    raw = await request.read()
    now = datetime.now(UTC)
    record = Recorded(
        received_at=now,
        webhook_id=request.headers.get("webhook-id"),
        webhook_timestamp=request.headers.get("webhook-timestamp"),
        webhook_signature=request.headers.get("webhook-signature"),
        signature_valid=False,
        raw=raw.decode("utf-8", errors="replace"),
        body=None,
        answered=None,
    )
    state.recorded.append(record)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    record.body = body
    try:
        verify(state.secrets, request.headers, raw, now)
    except SignatureInvalid as exc:
        record.answered = 401
        return _problem(401, "Unauthorized", str(exc))
    record.signature_valid = True
    if not isinstance(body, dict):
        record.answered = 400
        return web.json_response({"reason": "body is not a JSON object"}, status=400)

    settings = state.settings
    match state.next_mode():
        case SimMode.DOWN:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=204)  # never sent: the connection is gone
        case SimMode.FAIL:
            record.answered = settings.status
            headers: dict[str, str] = {}
            if settings.retry_after is not None:
                headers["Retry-After"] = str(settings.retry_after)
            return web.json_response(
                {"status": "failed", "reason": "simulated failure"},
                status=settings.status,
                headers=headers,
            )
        case SimMode.REJECT:
            record.answered = 400
            return web.json_response({"reason": settings.reason}, status=400)
        case SimMode.SLOW:
            await asyncio.sleep(settings.delay_ms / 1000)
    record.answered = 202
    if state.receipt_url is not None and record.webhook_id is not None:
        _send_receipt_later(request.app, state.receipt_url, record.webhook_id, body.get("kind"))
    return web.json_response({"status": "received"}, status=202)


def _problem(status: int, title: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


async def _list_messages(request: web.Request) -> web.Response:
    case_id = request.query.get("case_id")
    return web.json_response(
        [
            r.to_json()
            for r in request.app[SIM_STATE].recorded
            if case_id is None or (isinstance(r.body, dict) and r.body.get("case_id") == case_id)
        ]
    )


async def _clear_messages(request: web.Request) -> web.Response:
    request.app[SIM_STATE].recorded.clear()
    return web.Response(status=204)


async def _get_mode(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_STATE].mode_json())


async def _put_mode(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    try:
        settings = ModeSettings.model_validate_json(await request.read())
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        return web.json_response({"errors": errors}, status=400)
    state.set_mode(settings)
    return web.json_response(state.mode_json())


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_STATE].stats())


def _send_receipt_later(app: web.Application, url: str, distribution_id: str, kind: object) -> None:
    state = app[SIM_STATE]
    state.receipts_started += 1
    receipt = Receipt(
        distribution_id=distribution_id,
        status=ReceiptStatus.ACCEPTED if kind == "report" else ReceiptStatus.RECEIVED,
        at=datetime.now(UTC),
        by=ReceiptBy(role="operator-112", id="simulator"),
        ticket=f"SIM112-{state.receipts_started:06d}",
    )
    task = asyncio.create_task(_post_receipt(app, url, receipt))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def _post_receipt(app: web.Application, url: str, receipt: Receipt) -> None:
    state = app[SIM_STATE]
    body = receipt.model_dump_json(exclude_none=True).encode()
    headers = webhook_headers(state.receipt_secrets, str(uuid.uuid4()), body, datetime.now(UTC))
    try:
        async with (
            asyncio.timeout(RECEIPT_TIMEOUT_S),
            app[RECEIPT_SESSION].post(url, data=body, headers=headers) as response,
        ):
            ok = 200 <= response.status < 300
    except (TimeoutError, aiohttp.ClientError):
        ok = False
    if ok:
        state.receipts_sent += 1
    else:
        state.receipts_failed += 1


async def _receipt_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[RECEIPT_SESSION] = session
        yield


async def _background_tasks(app: web.Application) -> AsyncIterator[None]:
    yield
    tasks = app[SIM_STATE].tasks
    for task in list(tasks):
        task.cancel()
    for task in list(tasks):
        with contextlib.suppress(asyncio.CancelledError):
            await task
