"""Deadline escalation on the real stack: at 80 % ``delivery.at_risk`` (and the failover
endpoint), at 100 % ``delivery.deadline_missed``, once each; nothing once delivered."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from delivery_support import (
    EventTap,
    WithFailover,
    accepted_ids,
    eventually,
    gateway_with_failover,
    set_sim_mode,
    unique_report,
    update,
)
from gateway_support import RunningGateway

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
