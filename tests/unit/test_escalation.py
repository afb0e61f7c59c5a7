import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.escalation import (
    AT_RISK,
    DEADLINE_MISSED,
    escalation_timers,
    failover_recipient,
    handlers,
    on_at_risk,
    on_deadline_missed,
)
from gateway.model import Destination, OutboundMessage

SENT = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
BODY = b'{"distribution_id":"d-1","sequence":3}'


def message(
    *, destination: Destination = Destination.DELIVER, deadline: timedelta | None = None
) -> OutboundMessage:
    return OutboundMessage(
        destination=destination,
        routing_key="c112",
        message_id="d-1",
        case_id="urn:case:1",
        sequence=3,
        body=BODY,
        deadline_at=None if deadline is None else SENT + deadline,
    )


@pytest.mark.parametrize(
    ("deadline", "at_risk_after"),
    [
        (timedelta(minutes=5), timedelta(minutes=4)),
        (timedelta(seconds=10), timedelta(seconds=8)),
        (timedelta(minutes=15), timedelta(minutes=12)),
    ],
)
def test_at_risk_fires_at_80_percent_and_missed_at_the_deadline(
    deadline: timedelta, at_risk_after: timedelta
) -> None:
    found = escalation_timers(
        message(deadline=deadline), sent_at=SENT, kecamatan_slug="cipondoh", risk="high"
    )
    by_kind = {t.kind: t for t in found}
    assert set(by_kind) == {AT_RISK, DEADLINE_MISSED}
    assert by_kind[AT_RISK].fire_at == SENT + at_risk_after
    assert by_kind[DEADLINE_MISSED].fire_at == SENT + deadline
    assert {t.subject for t in found} == {"d-1"}, "delivery cancels them by distribution id"
    assert len({t.timer_id for t in found}) == 2


@pytest.mark.parametrize(
    "msg",
    [message(deadline=None), message(destination=Destination.EVENTS, deadline=timedelta(1))],
)
def test_no_timers_without_a_deadline_or_for_events(msg: OutboundMessage) -> None:
    assert escalation_timers(msg, sent_at=SENT, kecamatan_slug=None, risk=None) == ()


def test_at_risk_publishes_an_s0_event_on_the_topic() -> None:
    timer = escalation_timers(
        message(deadline=timedelta(minutes=5)), sent_at=SENT, kecamatan_slug="cipondoh", risk="high"
    )[0]
    (event,) = on_at_risk(timer, failover=False)
    assert event.destination is Destination.EVENTS
    assert event.routing_key == "delivery.at_risk.cipondoh.high"
    body = json.loads(event.body)
    assert body["event"] == "delivery.at_risk"
    assert body["distribution_id"] == "d-1"
    assert body["failover"] is False
    assert b"sequence" not in event.body, "the event does not carry the message"
    assert on_at_risk(timer, failover=False)[0].message_id == event.message_id, "stable id"


def test_at_risk_with_failover_also_sends_the_same_envelope_to_the_failover_queue() -> None:
    timer = escalation_timers(
        message(deadline=timedelta(minutes=5)), sent_at=SENT, kecamatan_slug=None, risk=None
    )[0]
    event, copy = on_at_risk(timer, failover=True)
    assert event.routing_key == "delivery.at_risk.-.-"
    assert copy.destination is Destination.DELIVER
    assert copy.routing_key == failover_recipient("c112") == "c112_failover"
    assert copy.body == BODY
    assert copy.sequence == 3
    assert copy.deadline_at == SENT + timedelta(minutes=5)
    assert copy.message_id not in ("d-1", event.message_id), "outbox ids are unique"


def test_deadline_missed_is_one_event() -> None:
    timer = escalation_timers(
        message(deadline=timedelta(minutes=5)), sent_at=SENT, kecamatan_slug="pinang", risk="low"
    )[1]
    (event,) = on_deadline_missed(timer)
    assert event.routing_key == "delivery.deadline_missed.pinang.low"
    assert json.loads(event.body)["event"] == "delivery.deadline_missed"


@pytest.mark.parametrize("failover", [True, False])
def test_the_registry_names_both_kinds(failover: bool) -> None:
    registry = handlers(failover=failover)
    timer = escalation_timers(
        message(deadline=timedelta(minutes=5)), sent_at=SENT, kecamatan_slug=None, risk=None
    )[0]
    assert set(registry) == {AT_RISK, DEADLINE_MISSED}
    assert len(registry[AT_RISK](timer)) == (2 if failover else 1)
