"""The 112 simulator, driven over HTTP like the gateway and a drill operator drive it."""

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient, AiohttpServer
from samples import new_secret

from contracts.receipt import Receipt, ReceiptStatus
from gateway.adapters.push_client import HttpPusher
from gateway.adapters.simulator_112 import (
    MAX_RECORDED,
    SIM_STATE,
    SimMode,
    create_simulator_app,
    run_simulator,
)
from gateway.errors import SignatureInvalid, TransientDeliveryError
from gateway.signing import verify, webhook_headers

FIXTURES = Path(__file__).parents[1] / "fixtures" / "c112"

Client = TestClient[web.Request, web.Application]
T = TypeVar("T")


SECRET = new_secret()


def envelope(fixture: str = "push-case-to-112.json", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / fixture).read_text())
    body["distribution_id"] = str(uuid.uuid4())
    return body | changes


def signed(
    body: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    msg_id: str | None = None,
    now: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if msg_id is None:
        msg_id = body["distribution_id"] if isinstance(body, dict) else str(uuid.uuid4())
    return raw, webhook_headers([secret], msg_id, raw, now or datetime.now(UTC))


@pytest.fixture
async def sim(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(create_simulator_app(secret=SECRET))


async def push(
    sim: Client, body: dict[str, Any] | bytes, path: str = "/", **sign: Any
) -> aiohttp.ClientResponse:
    raw, headers = signed(body, **sign)
    return await sim.post(path, data=raw, headers=headers)


async def set_mode(sim: Client, **mode: Any) -> dict[str, Any]:
    response = await sim.put("/_sim/mode", json=mode)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def messages(sim: Client, **query: str) -> list[dict[str, Any]]:
    response = await sim.get("/_sim/messages", params=query)
    assert response.status == 200
    answer: list[dict[str, Any]] = await response.json()
    return answer


async def stats(sim: Client) -> dict[str, int]:
    response = await sim.get("/_sim/stats")
    answer: dict[str, int] = await response.json()
    return answer


@pytest.mark.parametrize("path", ["/", "/v1/messages"])
async def test_a_signed_message_is_recorded_and_answered_202(sim: Client, path: str) -> None:
    body = envelope()

    response = await push(sim, body, path)

    assert response.status == 202
    assert await response.json() == {"status": "received"}
    [recorded] = await messages(sim)
    assert recorded["signature_valid"] is True
    assert recorded["body"] == body
    assert recorded["answered"] == 202
    assert recorded["headers"]["webhook-id"] == body["distribution_id"]
    assert int(recorded["headers"]["webhook-timestamp"]) == pytest.approx(time.time(), abs=5)
    assert datetime.fromisoformat(recorded["received_at"]).tzinfo is not None


@pytest.mark.parametrize(
    "sign",
    [
        pytest.param({"secret": new_secret()}, id="other-secret"),
        pytest.param({"now": datetime.now(UTC) - timedelta(minutes=10)}, id="stale"),
    ],
)
async def test_a_bad_signature_is_401_and_not_recorded_as_valid(
    sim: Client, sign: dict[str, Any]
) -> None:
    response = await push(sim, envelope(), **sign)

    assert response.status == 401
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["status"] == 401
    [recorded] = await messages(sim)
    assert recorded["signature_valid"] is False
    assert recorded["answered"] == 401
    assert await stats(sim) == {
        "received": 0,
        "distinct": 0,
        "duplicates": 0,
        "accepted": 0,
        "accepted_duplicates": 0,
        "invalid_signature": 1,
        "receipts_sent": 0,
        "receipts_failed": 0,
    }


async def test_an_unsigned_message_is_401(sim: Client) -> None:
    response = await sim.post("/", data=json.dumps(envelope()).encode())

    assert response.status == 401


async def test_a_bad_signature_is_401_even_when_the_mode_is_down(sim: Client) -> None:
    await set_mode(sim, mode="down")

    response = await push(sim, envelope(), secret=new_secret())

    assert response.status == 401


async def test_every_rotated_secret_is_accepted(aiohttp_client: AiohttpClient) -> None:
    old, new = new_secret(), new_secret()
    sim = await aiohttp_client(create_simulator_app(secret=f"{new} {old}"))

    for secret in (old, new):
        response = await push(sim, envelope(), secret=secret)
        assert response.status == 202


async def test_a_signed_body_that_is_not_a_json_object_is_400(sim: Client) -> None:
    response = await push(sim, b"[1, 2")

    assert response.status == 400
    [recorded] = await messages(sim)
    assert recorded["signature_valid"] is True
    assert recorded["body"] is None


async def test_fail_mode_answers_the_status_with_retry_after(sim: Client) -> None:
    await set_mode(sim, mode="fail", status=503, retry_after=2)

    response = await push(sim, envelope())

    assert response.status == 503
    assert response.headers["Retry-After"] == "2"
    [recorded] = await messages(sim)
    assert recorded["answered"] == 503


async def test_fail_mode_seen_through_the_push_client(sim: Client) -> None:
    await set_mode(sim, mode="fail", status=429, retry_after=30)
    raw, headers = signed(envelope())

    answer = await HttpPusher(sim.session, 5).push(str(sim.make_url("/")), raw, headers)

    assert answer.status == 429
    assert answer.headers["retry-after"] == "30"


async def test_fail_next_fails_that_many_then_recovers(sim: Client) -> None:
    mode = await set_mode(sim, mode="fail", status=503, fail_next=2)
    assert mode["remaining"] == 2
    body = envelope()

    statuses = [(await push(sim, body)).status for _ in range(4)]

    assert statuses == [503, 503, 202, 202]
    assert (await (await sim.get("/_sim/mode")).json())["remaining"] == 0
    assert await stats(sim) == {
        "received": 4,
        "distinct": 1,
        "duplicates": 3,
        "accepted": 2,
        "accepted_duplicates": 1,
        "invalid_signature": 0,
        "receipts_sent": 0,
        "receipts_failed": 0,
    }


async def test_slow_mode_answers_after_the_delay(sim: Client) -> None:
    await set_mode(sim, mode="slow", delay_ms=300)
    started = time.monotonic()

    response = await push(sim, envelope())

    assert response.status == 202
    assert time.monotonic() - started >= 0.3


async def test_slow_mode_beyond_the_push_timeout_is_a_timeout(sim: Client) -> None:
    await set_mode(sim, mode="slow", delay_ms=400)
    raw, headers = signed(envelope())

    with pytest.raises(TransientDeliveryError) as caught:
        await HttpPusher(sim.session, 0.05).push(str(sim.make_url("/")), raw, headers)

    assert caught.value.error_class == "timeout"


async def test_reject_mode_answers_400_with_the_reason(sim: Client) -> None:
    await set_mode(sim, mode="reject", reason="unknown kelurahan")

    response = await push(sim, envelope())

    assert response.status == 400
    assert await response.json() == {"reason": "unknown kelurahan"}


async def test_down_mode_drops_the_connection(sim: Client) -> None:
    await set_mode(sim, mode="down")
    body = envelope()
    raw, headers = signed(body)
    pusher = HttpPusher(sim.session, 5)

    with pytest.raises(TransientDeliveryError) as caught:
        await pusher.push(str(sim.make_url("/")), raw, headers)

    assert caught.value.error_class == "disconnected"
    [recorded] = await messages(sim)
    assert recorded["answered"] is None
    await set_mode(sim, mode="ok")
    assert (await pusher.push(str(sim.make_url("/")), raw, headers)).status == 202


async def test_the_mode_can_be_given_at_creation(aiohttp_client: AiohttpClient) -> None:
    sim = await aiohttp_client(create_simulator_app(secret=SECRET, mode=SimMode.REJECT))

    assert (await push(sim, envelope())).status == 400
    assert (await (await sim.get("/_sim/mode")).json())["mode"] == "reject"


@pytest.mark.parametrize(
    "mode",
    [
        {"mode": "explode"},
        {"mode": "fail", "status": 200},
        {"mode": "slow", "delay_ms": -1},
        {"mode": "fail", "fail_next": 0},
        {"mode": "ok", "colour": "red"},
    ],
)
async def test_an_invalid_mode_is_refused_and_changes_nothing(
    sim: Client, mode: dict[str, Any]
) -> None:
    response = await sim.put("/_sim/mode", json=mode)

    assert response.status == 400
    assert (await response.json())["errors"]
    assert (await (await sim.get("/_sim/mode")).json())["mode"] == "ok"


async def test_duplicates_are_counted_by_webhook_id(sim: Client) -> None:
    first, second = envelope(), envelope()

    for body in (first, first, second, first):
        assert (await push(sim, body)).status == 202

    assert await stats(sim) == {
        "received": 4,
        "distinct": 2,
        "duplicates": 2,
        "accepted": 4,
        "accepted_duplicates": 2,
        "invalid_signature": 0,
        "receipts_sent": 0,
        "receipts_failed": 0,
    }


async def test_messages_filter_by_case_and_clear(sim: Client) -> None:
    one = envelope(case_id="urn:tangerangkota:kdrt:ONE")
    two = envelope(case_id="urn:tangerangkota:kdrt:TWO")
    for body in (one, two, one):
        await push(sim, body)

    assert [m["body"]["case_id"] for m in await messages(sim, case_id=one["case_id"])] == [
        one["case_id"]
    ] * 2
    assert (await sim.delete("/_sim/messages")).status == 204
    assert await messages(sim) == []
    assert (await stats(sim))["received"] == 0


async def test_the_record_is_bounded(sim: Client) -> None:
    recorded = sim.app[SIM_STATE].recorded if sim.app is not None else None

    assert recorded is not None
    assert recorded.maxlen == MAX_RECORDED


RECEIPTS: web.AppKey[list[Receipt]] = web.AppKey("receipts", list)
RECEIPT_ARRIVED: web.AppKey[asyncio.Event] = web.AppKey("receipt_arrived", asyncio.Event)


async def receipt_sink(aiohttp_server: AiohttpServer, secret: str) -> TestServer:
    async def receive(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            verify([secret], request.headers, raw, datetime.now(UTC))
        except SignatureInvalid:
            return web.Response(status=401)
        request.app[RECEIPTS].append(Receipt.model_validate_json(raw))
        request.app[RECEIPT_ARRIVED].set()
        return web.Response(status=202)

    app = web.Application()
    app[RECEIPTS] = []
    app[RECEIPT_ARRIVED] = asyncio.Event()
    app.router.add_post("/v1/c112/receipts", receive)
    return await aiohttp_server(app)


async def test_accepted_messages_are_followed_by_a_signed_receipt(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer
) -> None:
    receipt_secret = new_secret()
    sink = await receipt_sink(aiohttp_server, receipt_secret)
    sim = await aiohttp_client(
        create_simulator_app(
            secret=SECRET,
            receipt_url=str(sink.make_url("/v1/c112/receipts")),
            receipt_secret=receipt_secret,
        )
    )
    body = envelope()

    assert (await push(sim, body)).status == 202
    await asyncio.wait_for(sink.app[RECEIPT_ARRIVED].wait(), 5)

    [receipt] = sink.app[RECEIPTS]
    assert receipt.distribution_id == body["distribution_id"]
    assert receipt.status is ReceiptStatus.ACCEPTED
    assert receipt.ticket
    assert (await wait_for(lambda: stats(sim), lambda s: s["receipts_sent"] == 1))[
        "receipts_sent"
    ] == 1


async def test_receipts_are_signed_with_the_push_secret_by_default(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer
) -> None:
    sink = await receipt_sink(aiohttp_server, SECRET)
    sim = await aiohttp_client(
        create_simulator_app(secret=SECRET, receipt_url=str(sink.make_url("/v1/c112/receipts")))
    )
    status_report = envelope("push-status-to-112.json")

    assert (await push(sim, status_report)).status == 202
    await asyncio.wait_for(sink.app[RECEIPT_ARRIVED].wait(), 5)

    assert [r.status for r in sink.app[RECEIPTS]] == [ReceiptStatus.RECEIVED]


async def test_an_unreachable_receipt_url_is_counted_not_raised(
    aiohttp_client: AiohttpClient,
) -> None:
    # bound and never listening: refused, and no other process can take the port meanwhile
    with socket.socket() as unreachable:
        unreachable.bind(("127.0.0.1", 0))
        port = unreachable.getsockname()[1]
        sim = await aiohttp_client(
            create_simulator_app(secret=SECRET, receipt_url=f"http://127.0.0.1:{port}/")
        )

        assert (await push(sim, envelope())).status == 202
        assert (await wait_for(lambda: stats(sim), lambda s: s["receipts_failed"] == 1))[
            "receipts_failed"
        ] == 1


async def test_no_receipt_is_sent_for_a_refused_message(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer
) -> None:
    sink = await receipt_sink(aiohttp_server, SECRET)
    sim = await aiohttp_client(
        create_simulator_app(secret=SECRET, receipt_url=str(sink.make_url("/v1/c112/receipts")))
    )
    await set_mode(sim, mode="fail")

    assert (await push(sim, envelope())).status == 503
    await asyncio.sleep(0.1)

    assert sink.app[RECEIPTS] == []
    assert sim.app is not None
    assert not sim.app[SIM_STATE].tasks


async def test_run_simulator_serves_until_cancelled() -> None:
    port = free_port()
    task = asyncio.create_task(run_simulator("127.0.0.1", port, SECRET))
    base = f"http://127.0.0.1:{port}"
    # force_close: the check after cancelling must open a new connection
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        pusher = HttpPusher(session, 5)
        raw, headers = signed(envelope())
        answer = await wait_for(
            lambda: pusher.push(f"{base}/v1/messages", raw, headers),
            lambda a: a.status == 202,
            retry_on=TransientDeliveryError,
        )
        assert answer.status == 202

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        with pytest.raises(TransientDeliveryError) as caught:
            await pusher.push(f"{base}/v1/messages", raw, headers)
        assert caught.value.error_class == "connection_error"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    retry_on: type[Exception] | None = None,
    within_s: float = 5,
) -> T:
    deadline = time.monotonic() + within_s
    while True:
        try:
            value = await probe()
        except Exception as exc:
            if retry_on is None or not isinstance(exc, retry_on) or time.monotonic() > deadline:
                raise
        else:
            if done(value) or time.monotonic() > deadline:
                return value
        await asyncio.sleep(0.02)
