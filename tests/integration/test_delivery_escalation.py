"""Deadline escalation on the real stack: at 80 % ``delivery.at_risk`` (and the failover
endpoint), at 100 % ``delivery.deadline_missed``, once each; nothing once delivered. Also
for messages the SOP workflow makes after intake, shown in the delivery log and the case."""

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from delivery_support import (
    OPS,
    OPS_TOKEN,
    EventTap,
    WithFailover,
    accepted_ids,
    gateway_with_failover,
    ops_get,
    post_receipt,
    set_sim_mode,
    unique_report,
    update,
)
from gateway_support import RunningGateway, eventually

from gateway.escalation import escalation_timers

pytestmark = pytest.mark.integration


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[WithFailover]:
    async with gateway_with_failover(
        tmp_path, sla_timer_poll_s=0.1, breaker_cool_down_s=1.0
    ) as running:
        yield running


async def case_without_112(gw: RunningGateway) -> str:
    status, body = await gw.post_report(unique_report("valid-03-hotline-anonymous-no-medis.json"))
    assert status == 202, body
    assert body["needs_other_agencies"] is False
    case_id: str = body["case_id"]
    return case_id


async def send_with_deadline(gw: RunningGateway, case_id: str, seconds: float) -> str:
    now = datetime.now(UTC)
    message = update(case_id, 1, deadline_at=now + timedelta(seconds=seconds))
    store = await gw.store()
    try:
        await store.enqueue_outbound([message])
        await store.schedule_timers(
            escalation_timers(message, sent_at=now, kecamatan_slug="pinang", risk="high")
        )
    finally:
        await store.close()
    return message.message_id


async def test_a_message_delivered_in_time_raises_nothing(rig: WithFailover) -> None:
    gw = rig.gw
    async with EventTap(gw.settings) as tap:
        case_id = await case_without_112(gw)
        distribution_id = await send_with_deadline(gw, case_id, 1.5)
        messages = await gw.wait_for_sim(1, timeout_s=5)
        assert accepted_ids(messages) == [distribution_id]
        await asyncio.sleep(2.0)
        assert tap.events == []
    assert await rig.failover_messages() == []


async def test_an_undelivered_message_is_at_risk_then_missed_once_each_and_fails_over(
    rig: WithFailover,
) -> None:
    gw = rig.gw
    await set_sim_mode(gw, mode="down")
    async with EventTap(gw.settings) as tap:
        case_id = await case_without_112(gw)
        distribution_id = await send_with_deadline(gw, case_id, 2.0)

        async def missed() -> bool:
            return bool(tap.named("delivery.deadline_missed"))

        await eventually(missed, 6, "deadline missed")
        (at_risk,) = tap.named("delivery.at_risk")
        assert at_risk["distribution_id"] == distribution_id
        assert at_risk["failover"] is True
        failover = await rig.failover_messages()
        assert [json.loads(m["raw"])["distribution_id"] for m in failover] == [distribution_id]
        assert failover[0]["answered"] == 202

        await set_sim_mode(gw, mode="ok")

        async def delivered() -> bool:
            return distribution_id in accepted_ids(await gw.sim_messages())

        await eventually(delivered, 10, "delivered to 112 once it is back")
        await asyncio.sleep(0.5)
        keys = sorted(key for key, _ in tap.events)
        assert keys == ["delivery.at_risk.pinang.high", "delivery.deadline_missed.pinang.high"]


# ---- messages the SOP workflow makes later: the case pushed to 112, status reports ----

SATGAS = "satgas-token-0123456789abcdef"
STAFF = {"Authorization": f"Bearer {SATGAS}"}
SCALE = 60  # 112's 5 minutes become 5 s: at risk after 4 s, missed at 5 s


@pytest.fixture
async def scaled(tmp_path: Path) -> AsyncIterator[WithFailover]:
    async with gateway_with_failover(
        tmp_path,
        sla_scale=SCALE,
        sla_timer_poll_s=0.1,
        breaker_cool_down_s=1.0,
        satgas_token=SATGAS,
        ops_token=OPS_TOKEN,
    ) as running:
        yield running


async def staff_event(gw: RunningGateway, case_id: str, kind: str, **fields: Any) -> Any:
    body = {"type": kind, "by": {"role": "satgas", "id": "staff-7"}, **fields}
    response = await gw.client.post(f"/v1/cases/{case_id}/events", json=body, headers=STAFF)
    assert response.status == 200, await response.text()
    return await response.json()


async def case_delivery(gw: RunningGateway, case_id: str, headers: dict[str, str]) -> Any:
    response = await gw.client.get(f"/v1/cases/{case_id}", headers=headers)
    assert response.status == 200, await response.text()
    return (await response.json())["delivery"]


def escalation_timers_of(gw: RunningGateway, distribution_id: str) -> list[tuple[Any, Any]]:
    with sqlite3.connect(gw.settings.sqlite_path()) as db:
        return db.execute(
            "SELECT fired_at, cancelled_at FROM timers WHERE subject = ? ORDER BY kind",
            (distribution_id,),
        ).fetchall()


async def test_the_case_routed_to_112_by_a_staff_event_escalates_and_shows_it_in_the_case(
    scaled: WithFailover,
) -> None:
    gw = scaled.gw
    await set_sim_mode(gw, mode="down")
    async with EventTap(gw.settings) as tap:
        case_id = await case_without_112(gw)
        after = await staff_event(
            gw, case_id, "needs_other_agencies", agencies=["police"], reason="armed"
        )
        (pending,) = after["delivery"]
        distribution_id = pending["distribution_id"]
        assert (pending["recipient"], pending["delivered"]) == ("c112", False)

        async def missed() -> bool:
            return bool(tap.named("delivery.deadline_missed"))

        await eventually(missed, 12, "the deadline of the case pushed to 112 missed")

        async def failed_over() -> bool:
            (entry,) = await case_delivery(gw, case_id, OPS)
            return entry["failover_delivered_at"] is not None

        await eventually(failed_over, 5, "the copy delivered to the failover endpoint")
        (entry,) = await case_delivery(gw, case_id, OPS)
        assert entry["distribution_id"] == distribution_id
        assert entry["delivered"] is False
        assert entry["last_outcome"] == "retry"
        assert entry["attempts"] >= 1
        at_risk_at = datetime.fromisoformat(entry["at_risk_at"])
        missed_at = datetime.fromisoformat(entry["deadline_missed_at"])
        assert at_risk_at < missed_at
        assert entry["failover_started_at"] == entry["at_risk_at"]

        log = await ops_get(gw, f"/v1/ops/deliveries?case_id={case_id}&limit=1000")
        escalations = [
            (e["distribution_id"], e["recipient"], e["outcome"])
            for e in log["entries"]
            if e["outcome"] in ("at_risk", "deadline_missed", "failover_started")
        ]
        assert sorted(escalations) == [
            (distribution_id, "c112", "at_risk"),
            (distribution_id, "c112", "deadline_missed"),
            (distribution_id, "c112_failover", "failover_started"),
        ]

        await set_sim_mode(gw, mode="ok")

        async def delivered() -> bool:
            (entry,) = await case_delivery(gw, case_id, OPS)
            return bool(entry["delivered"])

        await eventually(delivered, 15, "delivered to 112 once it is back")
        await asyncio.sleep(0.5)
        assert len(tap.named("delivery.at_risk")) == 1
        assert len(tap.named("delivery.deadline_missed")) == 1

    status, _ = await post_receipt(
        gw,
        {"distribution_id": distribution_id, "status": "accepted", "at": "2026-11-30T06:45Z"},
    )
    assert status == 202
    (entry,) = await case_delivery(gw, case_id, STAFF)
    assert (entry["delivered"], entry["last_outcome"]) == (True, "delivered")
    assert entry["receipt"]["status"] == "accepted"
    assert entry["deadline_missed_at"] is not None, "the history stays"


async def test_a_status_report_delivered_in_time_cancels_its_escalation(
    scaled: WithFailover,
) -> None:
    gw = scaled.gw
    case_id = await case_without_112(gw)
    await staff_event(gw, case_id, "needs_other_agencies", agencies=["police"], reason="armed")
    after = await staff_event(
        gw, case_id, "status_report", report={"victim_status": "safe", "services": ["penjangkauan"]}
    )
    push, report = after["delivery"]

    async def both_delivered() -> bool:
        entries = await case_delivery(gw, case_id, OPS)
        return all(e["delivered"] for e in entries)

    await eventually(both_delivered, 4, "the push and the status report delivered in time")
    for entry in (push, report):
        timers = escalation_timers_of(gw, entry["distribution_id"])
        assert len(timers) == 2, "at risk and deadline missed, set by the staff event"
        assert all(fired is None and cancelled is not None for fired, cancelled in timers)
    assert await scaled.failover_messages() == []
