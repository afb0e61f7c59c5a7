"""Receipts, the parking lot and replay, per-case order and the circuit breaker, on the
real stack: the gateway app, RabbitMQ, SQLite and the 112 simulator."""

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from delivery_support import (
    OPS,
    OPS_TOKEN,
    accepted_case,
    accepted_ids,
    ops_get,
    post_receipt,
    set_sim_mode,
    update,
)
from gateway_support import AMQP_URL, RunningGateway, eventually, running_gateway, serve_env
from structlog.testing import capture_logs

from gateway import audit
from gateway.adapters.auth import token_fingerprint
from gateway.bootstrap import RUNTIME, topology
from gateway.model import ParkedSelector
from gateway.queue.connection import AmqpConnection
from gateway.queue.publisher import CASE_ID, DEADLINE_AT, SEQUENCE, Publisher, persistent_message

pytestmark = pytest.mark.integration


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with running_gateway(tmp_path, ops_token=OPS_TOKEN, delivery_limit=2) as running:
        yield running


async def delivered_message(gw: RunningGateway, case_id: str) -> dict[str, object]:
    messages = await gw.wait_for_sim(1, timeout_s=5)
    (message,) = [m for m in messages if m["body"]["case_id"] == case_id]
    return message


# ---- receipts ----


async def test_a_receipt_from_112_is_kept_apart_from_the_technical_delivery(
    gw: RunningGateway,
) -> None:
    case_id = await accepted_case(gw)
    distribution_id = (await delivered_message(gw, case_id))["headers"]["webhook-id"]  # type: ignore[index]

    status, body = await post_receipt(
        gw,
        {
            "distribution_id": distribution_id,
            "status": "accepted",
            "at": "2026-11-30T06:45:31Z",
            "by": {"role": "operator-112", "id": "op-14"},
            "ticket": "TS112-2026-118734",
        },
    )
    assert status == 202, body
    assert body == {
        "distribution_id": distribution_id,
        "status": "accepted",
        "case_id": case_id,
        "duplicate": False,
    }

    view = await ops_get(gw, f"/v1/ops/cases/{case_id}/delivery")
    assert [(a["distribution_id"], a["outcome"]) for a in view["attempts"]] == [
        (distribution_id, "delivered")
    ]
    assert [(r["distribution_id"], r["status"], r["ticket"]) for r in view["receipts"]] == [
        (distribution_id, "accepted", "TS112-2026-118734")
    ]
    assert view["parked"] == []


async def test_receipts_need_112s_signature_and_valid_fields(gw: RunningGateway) -> None:
    receipt = {"distribution_id": "d-1", "status": "received", "at": "2026-11-30T06:45:31Z"}
    status, body = await post_receipt(gw, receipt, secret=gw.inbound_secret)
    assert status == 401, body
    status, body = await post_receipt(gw, {**receipt, "status": "maybe"})
    assert status == 422, body
    assert [e["pointer"] for e in body["errors"]] == ["/status"]


async def test_the_same_receipt_twice_is_recorded_once(gw: RunningGateway) -> None:
    case_id = await accepted_case(gw)
    distribution_id = (await delivered_message(gw, case_id))["headers"]["webhook-id"]  # type: ignore[index]
    receipt = {"distribution_id": distribution_id, "status": "received", "at": "2026-11-30T06:45Z"}
    first = await post_receipt(gw, receipt, msg_id="msg-receipt-1")
    again = await post_receipt(gw, receipt, msg_id="msg-receipt-1")
    assert (first[0], first[1]["duplicate"]) == (202, False)
    assert (again[0], again[1]["duplicate"]) == (202, True)
    view = await ops_get(gw, f"/v1/ops/cases/{case_id}/delivery")
    assert len(view["receipts"]) == 1


async def test_a_rejection_alerts_ops_without_quoting_the_reason(gw: RunningGateway) -> None:
    case_id = await accepted_case(gw)
    distribution_id = (await delivered_message(gw, case_id))["headers"]["webhook-id"]  # type: ignore[index]
    reason = "Korban Dewi Lestari tidak dapat dihubungi"
    with capture_logs() as logs:
        status, _ = await post_receipt(
            gw,
            {
                "distribution_id": distribution_id,
                "status": "rejected",
                "at": "2026-11-30T06:45:31Z",
                "reason": reason,
            },
        )
    assert status == 202
    alerts = [e for e in logs if e["event"] == "ops_alert"]
    assert [(a["alert"], a["case_id"], a["log_level"]) for a in alerts] == [
        ("c112.receipt_rejected", case_id, "error")
    ]
    assert reason not in repr(logs)
    view = await ops_get(gw, f"/v1/ops/cases/{case_id}/delivery")
    assert view["receipts"][0]["reason"] == reason, "kept in the store for the case view"


# ---- parking lot and replay ----


async def test_a_400_is_parked_at_once_with_its_reason_and_replay_delivers_it(
    gw: RunningGateway,
) -> None:
    await set_sim_mode(gw, mode="reject", reason="schema tidak dikenal")
    case_id = await accepted_case(gw)

    async def parked() -> bool:
        return bool((await ops_get(gw, f"/v1/ops/parked?case_id={case_id}"))["parked"])

    await eventually(parked, 5, "the rejected message is in the parking lot")
    (item,) = (await ops_get(gw, f"/v1/ops/parked?case_id={case_id}"))["parked"]
    assert item["reason"].startswith("http_400: ")
    assert "schema tidak dikenal" in item["reason"]
    assert item["error_class"] == "http_400"
    assert item["recipient"] == "c112"
    assert [(a["outcome"], a["status_code"]) for a in item["attempts"]] == [("parked", 400)]
    sent = await gw.sim_messages()
    assert len(sent) == 1, "parked at once: one push, no retries"

    await set_sim_mode(gw, mode="ok")
    response = await gw.client.post("/v1/ops/replay", json={"case_id": case_id}, headers=OPS)
    assert response.status == 200
    assert (await response.json())["replayed"] == [item["distribution_id"]]

    messages = await gw.wait_for_sim(2, timeout_s=5)
    assert [m["headers"]["webhook-id"] for m in messages] == [item["distribution_id"]] * 2
    assert [m["answered"] for m in messages] == [400, 202]
    assert (await ops_get(gw, f"/v1/ops/parked?case_id={case_id}"))["parked"] == []
    view = await ops_get(gw, f"/v1/ops/cases/{case_id}/delivery")
    assert [a["outcome"] for a in view["attempts"]] == ["parked", "delivered"]
    assert await replays_audited(gw) == [("ops", token_fingerprint(OPS_TOKEN))]


async def replays_audited(gw: RunningGateway) -> list[tuple[str, str | None]]:
    """Who asked for each replay, as the audit log names them."""
    store = await gw.store()
    try:
        rows = await store.audit_rows()
    finally:
        await store.close()
    return [(r.actor_role, r.actor_id) for r in rows if r.action == audit.DELIVERY_REPLAYED]


async def test_replay_needs_the_ops_role_and_a_selection(gw: RunningGateway) -> None:
    response = await gw.client.post("/v1/ops/replay", json={"all": True})
    assert response.status == 401
    response = await gw.client.post("/v1/ops/replay", json={}, headers=OPS)
    assert response.status == 422


async def test_a_poison_message_is_parked_by_the_delivery_limit_and_others_flow(
    gw: RunningGateway,
) -> None:
    connection = AmqpConnection(AMQP_URL, name="test-poison")
    await connection.connect()
    try:
        topo = topology(gw.settings)
        poison_id = str(uuid.uuid4())
        await Publisher(connection, topo).send(
            topo.deliver_exchange,
            "c112",
            persistent_message(
                b'{"kind": "report"}',
                poison_id,
                {CASE_ID: "urn:case:poison", SEQUENCE: 1, DEADLINE_AT: "not a time"},
            ),
        )
    finally:
        await connection.close()
    case_id = await accepted_case(gw)
    await delivered_message(gw, case_id)

    async def parked() -> bool:
        return bool((await ops_get(gw, f"/v1/ops/parked?distribution_id={poison_id}"))["parked"])

    await eventually(parked, 10, "the poison message is parked")
    (item,) = (await ops_get(gw, f"/v1/ops/parked?distribution_id={poison_id}"))["parked"]
    assert item["reason"] == "dead-lettered by the broker: delivery_limit"
    assert item["recipient"] == "c112"
    assert item["case_id"] == "urn:case:poison"
    assert all(m["headers"]["webhook-id"] != poison_id for m in await gw.sim_messages())


async def test_gateway_replay_command_puts_parked_messages_back(gw: RunningGateway) -> None:
    await set_sim_mode(gw, mode="reject")
    case_id = await accepted_case(gw)
    store = await gw.store()
    try:

        async def parked() -> bool:
            return bool(await store.parked(ParkedSelector(case_id=case_id)))

        await eventually(parked, 5, "parked")
    finally:
        await store.close()
    await set_sim_mode(gw, mode="ok")
    settings = gw.settings
    env = serve_env(
        GATEWAY_DATABASE_URL=settings.database_url.get_secret_value(),
        GATEWAY_NAMESPACE=settings.namespace,
        GATEWAY_RETRY_DELAYS_S=json.dumps(settings.retry_delays_s),
        GATEWAY_DELIVERY_LIMIT=str(settings.delivery_limit),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "replay",
        "--case",
        case_id,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert case_id in out.decode()
    assert "replayed 1" in err.decode()
    messages = await gw.wait_for_sim(2, timeout_s=5)
    assert [m["answered"] for m in messages] == [400, 202]
    assert len({m["headers"]["webhook-id"] for m in messages}) == 1
    assert await replays_audited(gw) == [("cli", "gateway-replay")]


# ---- order and the circuit breaker ----


async def test_a_later_message_never_overtakes_an_earlier_one_in_the_retry_ladder(
    gw: RunningGateway,
) -> None:
    await set_sim_mode(gw, mode="fail", status=503, fail_next=3)  # the first push and its retries
    case_id = await accepted_case(gw)
    await gw.wait_for_sim(1, timeout_s=5)
    store = await gw.store()
    try:
        await store.enqueue_outbound([update(case_id, 2), update(case_id, 3)])
    finally:
        await store.close()

    async def three_delivered() -> bool:
        return len(accepted_ids(await gw.sim_messages())) >= 3

    await eventually(three_delivered, 15, "all three delivered")
    accepted = [m for m in await gw.sim_messages() if m["answered"] == 202]
    assert [m["body"]["sequence"] for m in accepted] == [1, 2, 3]
    failed = [m for m in await gw.sim_messages() if m["answered"] == 503]
    assert {m["body"]["sequence"] for m in failed} == {1}


async def test_the_breaker_stops_consuming_keeps_messages_in_the_broker_and_drains_by_deadline(
    tmp_path: Path,
) -> None:
    async with running_gateway(
        tmp_path,
        ops_token=OPS_TOKEN,
        breaker_threshold=3,
        breaker_cool_down_s=1.0,
        delivery_concurrency=1,
        push_attempts=1,
    ) as gw:
        worker = gw.client.app[RUNTIME].workers[0]
        cases = [await accepted_case(gw) for _ in range(7)]
        await gw.wait_for_sim(7, timeout_s=5)
        await set_sim_mode(gw, mode="fail", status=503)
        now = datetime.now(UTC)
        store = await gw.store()
        try:
            await store.enqueue_outbound([update(cases[0], 2, deadline_at=now)])

            async def opened() -> bool:
                return not worker.consuming

            await eventually(opened, 10, "the breaker opened and consuming stopped")
            tried_while_open = len(await gw.sim_messages())
            # different cases, so only deadlines decide; enqueued latest deadline first
            later = [
                update(case_id, 2, deadline_at=now + timedelta(minutes=10 - i))
                for i, case_id in enumerate(cases[1:])
            ]
            await store.enqueue_outbound(later)
        finally:
            await store.close()
        await asyncio.sleep(0.5)
        assert len(await gw.sim_messages()) == tried_while_open, "nothing pushed while open"

        await set_sim_mode(gw, mode="ok")

        async def drained() -> bool:
            return len(set(accepted_ids(await gw.sim_messages()))) == 14

        await eventually(drained, 20, "every message delivered after recovery")
        assert worker.consuming
        accepted = [m for m in await gw.sim_messages() if m["answered"] == 202][7:]
        assert len(accepted) == 7
        waited = {m.message_id for m in later}
        after_probe = [m["body"]["distribution_id"] for m in accepted[1:]]
        after_probe = [d for d in after_probe if d in waited]
        assert len(after_probe) >= len(later) - 1
        by_deadline = [m.message_id for m in sorted(later, key=lambda m: m.deadline_at or now)]
        assert after_probe == [d for d in by_deadline if d in after_probe]


async def test_112_back_after_a_short_outage_gets_its_messages_within_seconds(
    tmp_path: Path,
) -> None:
    """With the default cool-downs (1 s after opening, doubling with each failed probe up
    to 30 s), a restart of 112 holds its messages back for seconds, not for the longest
    cool-down; ops are alerted once per outage, not once per failed probe."""
    with capture_logs() as logs:
        async with running_gateway(tmp_path, breaker_threshold=2, push_attempts=1) as gw:
            worker = gw.client.app[RUNTIME].workers[0]
            await set_sim_mode(gw, mode="fail", status=503)
            cases = {await accepted_case(gw) for _ in range(2)}

            def cool_downs(event: str) -> list[float]:
                return [e["cool_down_s"] for e in logs if event in (e["event"], e.get("alert"))]

            async def two_probes_failed() -> bool:
                return len(cool_downs("delivery.circuit_probe_failed")) >= 2

            await eventually(two_probes_failed, 10, "two probes failed")
            await set_sim_mode(gw, mode="ok")

            async def delivered() -> bool:
                accepted = [m for m in await gw.sim_messages() if m["answered"] == 202]
                return {m["body"]["case_id"] for m in accepted} == cases

            await eventually(delivered, 8, "both delivered soon after 112 came back")
            assert worker.consuming
    assert cool_downs("delivery.circuit_open") == [1.0]
    assert cool_downs("delivery.circuit_probe_failed")[:2] == [2.0, 4.0]
