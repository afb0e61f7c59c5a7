"""The whole path on the real stack: signed report → store + outbox → RabbitMQ → 112 simulator."""

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gateway_support import RunningGateway, eventually, running_gateway
from queue_support import Broker
from samples import INVALID_SAMPLES, VALID_SAMPLES, fixture_bytes, new_secret, personal_strings
from standardwebhooks.webhooks import Webhook

from gateway import signing
from gateway.logs import configure_logging

pytestmark = pytest.mark.integration

EXPECTED_INVALID = {
    "invalid-01-missing-location-bad-phone.json": {"/lokasi", "/pelapor/no_hp"},
    "invalid-02-unknown-kelurahan-and-type.json": {
        "/kanal",
        "/korban/0/jenis_kelamin",
        "/korban/0/usia",
        "/lokasi/kelurahan",
        "/lokasi/kecamatan",
        "/jenis_kekerasan/0",
    },
}


@pytest.fixture
async def gw(tmp_path: Path, store_url: str) -> AsyncIterator[RunningGateway]:
    """The gateway on each store backend: SQLite and PostgreSQL."""
    async with running_gateway(tmp_path, database_url=store_url) as running:
        yield running


@pytest.fixture
def log_stream() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(json=True, level="debug", stream=stream)
    return stream


async def test_valid_samples_reach_112_signed_within_a_second(gw: RunningGateway) -> None:
    needing_112 = []
    for name in VALID_SAMPLES:
        status, body = await gw.post_report(fixture_bytes(name))
        assert status == 202, body
        assert body["case_id"].startswith("urn:tangerangkota:kdrt:")
        assert body["duplicate"] is False
        if body["needs_other_agencies"]:
            needing_112.append((body["case_id"], time.monotonic()))
    assert len(needing_112) == 2  # valid-01 asks for police, valid-02 for health

    messages = await gw.wait_for_sim(len(needing_112), timeout_s=1.0)
    webhook = Webhook(gw.c112_secret)
    for message in messages:
        headers = {k: v for k, v in message["headers"].items() if v is not None}
        assert webhook.verify(message["raw"], headers) == message["body"]
        assert message["signature_valid"] is True
    received = {m["body"]["case_id"]: m["body"] for m in messages}
    assert set(received) == {case_id for case_id, _ in needing_112}
    for envelope in received.values():
        assert envelope["kind"] == "report"
        assert envelope["schema"] == "kdrt-case/1"
        assert envelope["sequence"] == 1
        assert envelope["redaction_profile"] == "c112"
        assert "narrative" not in envelope["content"]
        assert all("name" not in v for v in envelope["content"]["victims"])
    for message in messages:
        assert message["headers"]["webhook-id"] == message["body"]["distribution_id"]


async def test_webhook_id_is_the_distribution_id_and_deadline_is_five_minutes(
    gw: RunningGateway,
) -> None:
    status, body = await gw.post_report(fixture_bytes("valid-01-app-basic.json"))
    assert status == 202
    [message] = await gw.wait_for_sim(1, timeout_s=5)
    envelope = message["body"]
    assert message["headers"]["webhook-id"] == envelope["distribution_id"]
    sent = envelope["sent_at"].replace("Z", "+00:00")
    deadline = envelope["deadline_at"].replace("Z", "+00:00")
    gap = datetime.fromisoformat(deadline) - datetime.fromisoformat(sent)
    assert gap.total_seconds() == 300
    assert body["c112_deadline_at"].startswith(envelope["deadline_at"][:19])
    content = envelope["content"]
    assert content["location"]["kelurahan"]["code"] == "36.71.11.1002"
    assert content["callback"] == {"phone": "+6281200007801", "role": "neighbour"}


@pytest.mark.parametrize("name", INVALID_SAMPLES)
async def test_invalid_samples_get_422_naming_each_field_and_are_quarantined(
    gw: RunningGateway, name: str
) -> None:
    response = await gw.client.post(
        "/v1/reports/si-lacak-perak",
        data=fixture_bytes(name),
        headers=_signed(gw, fixture_bytes(name)),
    )
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    problem = await response.json(content_type=None)
    assert problem["status"] == 422
    pointers = {error["pointer"] for error in problem["errors"]}
    assert pointers == EXPECTED_INVALID[name]
    assert all(error["detail"] for error in problem["errors"])
    store = await gw.store()
    try:
        kept = await store.quarantined()
    finally:
        await store.close()
    assert [q["reason"] for q in kept] == ["invalid_report"]
    assert await gw.sim_messages() == []


async def test_duplicate_report_is_one_case_and_one_delivery(gw: RunningGateway) -> None:
    body = fixture_bytes("valid-01-app-basic.json")
    first_status, first = await gw.post_report(body)
    second_status, second = await gw.post_report(body)
    assert (first_status, second_status) == (202, 202)
    assert second["case_id"] == first["case_id"]
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    await gw.wait_for_sim(1, timeout_s=5)
    await asyncio.sleep(1.0)  # time for a second delivery to show up, if one were made
    assert len(await gw.sim_messages()) == 1
    store = await gw.store()
    try:
        assert await store.count_cases() == 1
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("variant", "detail_word"),
    [("wrong-secret", "signature"), ("no-headers", "missing"), ("stale", "tolerance")],
)
async def test_bad_signature_is_401_and_stores_no_case(
    gw: RunningGateway, variant: str, detail_word: str
) -> None:
    body = fixture_bytes("valid-01-app-basic.json")
    headers = _signed(gw, body)
    if variant == "wrong-secret":
        headers = _signed(gw, body, secret=new_secret())
    elif variant == "no-headers":
        headers = {"content-type": "application/json"}
    else:
        headers = _signed(gw, body, age_s=600)
    response = await gw.client.post("/v1/reports/si-lacak-perak", data=body, headers=headers)
    assert response.status == 401
    assert response.content_type == "application/problem+json"
    assert detail_word in (await response.json(content_type=None))["detail"]
    store = await gw.store()
    try:
        assert await store.count_cases() == 0
        assert [q["reason"] for q in await store.quarantined()] == ["signature_invalid"]
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b"{}", 415),
        ("application/json", b"\xff\xfe not utf-8", 400),
        ("application/json", b"{not json", 400),
        ("application/json", b"[1, 2, 3]", 422),
        ("application/json", b"x" * 300_000, 413),
    ],
)
async def test_malformed_bodies_get_a_problem_and_never_a_500(
    gw: RunningGateway, content_type: str, body: bytes, status: int
) -> None:
    headers = _signed(gw, body)
    headers["content-type"] = content_type
    response = await gw.client.post("/v1/reports/si-lacak-perak", data=body, headers=headers)
    assert response.status == status
    assert response.content_type == "application/problem+json"


async def test_health_readiness_metrics_and_openapi(gw: RunningGateway) -> None:
    assert (await gw.client.get("/healthz")).status == 200
    ready = await gw.client.get("/readyz")
    assert ready.status == 200, await ready.text()
    assert (await ready.json())["checks"] == {"store": "up", "broker": "up"}
    await gw.post_report(fixture_bytes("valid-03-hotline-anonymous-no-medis.json"))
    metrics = await gw.client.get("/metrics")
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain; version=")
    assert 'gateway_intake_total{outcome="accepted",source="si-lacak-perak"} 1.0' in (
        await metrics.text()
    )
    spec = await (await gw.client.get("/openapi.json")).json()
    assert spec["openapi"] == "3.1.0"
    operation = spec["paths"]["/v1/reports/si-lacak-perak"]["post"]
    assert set(operation["responses"]) >= {"202", "401", "413", "415", "422"}


async def test_not_ready_while_its_queues_cannot_be_declared(tmp_path: Path) -> None:
    async with Broker.opened() as broker:
        parking = f"{broker.ns}.parking"
        # a classic queue where the gateway declares a quorum one: the broker refuses it
        async with broker.connection.connection.channel() as channel:
            await channel.declare_queue(parking, durable=True)
        async with running_gateway(tmp_path, namespace=broker.ns, wait_for_broker=False) as gw:
            for _ in range(5):
                response = await gw.client.get("/readyz")
                assert response.status == 503
                assert (await response.json())["checks"]["broker"] == "down: NotReady"
                await asyncio.sleep(0.3)
            async with broker.connection.connection.channel() as channel:
                await channel.queue_delete(parking)

            async def ready() -> bool:
                return (await gw.client.get("/readyz")).status == 200

            await eventually(ready, 20, "ready once the refused queue is gone")


async def test_no_log_line_carries_personal_data(tmp_path: Path, log_stream: io.StringIO) -> None:
    async with running_gateway(tmp_path) as gw:
        for name in VALID_SAMPLES + INVALID_SAMPLES:
            await gw.post_report(fixture_bytes(name))
        await gw.post_report(fixture_bytes("valid-01-app-basic.json"), secret=new_secret())
        await gw.wait_for_sim(2, timeout_s=5)
    output = log_stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any(line.get("event") == "report_accepted" for line in lines)
    leaked = sorted(s for s in personal_strings() if s in output)
    assert leaked == []


def _signed(
    gw: RunningGateway, body: bytes, *, secret: str | None = None, age_s: int = 0
) -> dict[str, str]:
    now = datetime.now(UTC) - timedelta(seconds=age_s)
    return signing.webhook_headers(
        [secret or gw.inbound_secret], "msg-" + str(time.time_ns()), body, now
    )
