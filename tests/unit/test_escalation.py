import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.escalation import (
    AT_RISK,
    DEADLINE_MISSED,
    escalation_timers,
    failover_id,
    failover_recipient,
    handlers,
    on_at_risk,
    on_deadline_missed,
    timers_for,
)
from gateway.model import AttemptOutcome, Destination, OutboundMessage

SENT = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
FIRED = SENT + timedelta(minutes=4, seconds=2)
BODY = b'{"distribution_id":"d-1","sequence":3}'


def message(
    *,
    destination: Destination = Destination.DELIVER,
    deadline: timedelta | None = None,
    message_id: str = "d-1",
) -> OutboundMessage:
    return OutboundMessage(
        destination=destination,
        routing_key="c112",
        message_id=message_id,
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


def test_only_the_at_risk_timer_keeps_a_copy_of_the_message() -> None:
    found = escalation_timers(
        message(deadline=timedelta(minutes=5)), sent_at=SENT, kecamatan_slug=None, risk=None
    )
    by_kind = {t.kind: t for t in found}
    assert "body" in by_kind[AT_RISK].data, "the failover copy is made from it"
    assert "body" not in by_kind[DEADLINE_MISSED].data


@pytest.mark.parametrize(
    "msg",
    [message(deadline=None), message(destination=Destination.EVENTS, deadline=timedelta(1))],
)
def test_no_timers_without_a_deadline_or_for_events(msg: OutboundMessage) -> None:
    assert escalation_timers(msg, sent_at=SENT, kecamatan_slug=None, risk=None) == ()


def test_timers_for_gives_every_message_with_a_deadline_its_two_timers() -> None:
    found = timers_for(
        [
            message(deadline=timedelta(minutes=5), message_id="d-1"),
            message(destination=Destination.EVENTS, message_id="e-1"),
            message(deadline=timedelta(seconds=30), message_id="d-2"),
        ],
        sent_at=SENT,
        kecamatan_slug="pinang",
        risk="high",
    )
    assert [(t.subject, t.kind) for t in found] == [
        ("d-1", AT_RISK),
        ("d-1", DEADLINE_MISSED),
        ("d-2", AT_RISK),
        ("d-2", DEADLINE_MISSED),
    ]


def test_at_risk_publishes_an_s0_event_on_the_topic() -> None:
    timer = escalation_timers(
        message(deadline=timedelta(minutes=5)), sent_at=SENT, kecamatan_slug="cipondoh", risk="high"
    )[0]
    effects = on_at_risk(timer, now=FIRED, failover=False)
    (event,) = effects.outgoing
    assert event.destination is Destination.EVENTS
    assert event.routing_key == "delivery.at_risk.cipondoh.high"
    body = json.loads(event.body)
    assert body["event"] == "delivery.at_risk"
    assert body["distribution_id"] == "d-1"
    assert body["failover"] is False
    assert b"sequence" not in event.body, "the event does not carry the message"
    again = on_at_risk(timer, now=FIRED, failover=False).outgoing[0]
    assert again.message_id == event.message_id, "stable id"
    (row,) = effects.delivery_log
    assert (row.distribution_id, row.recipient, row.outcome, row.at, row.attempt) == (
        "d-1",
        "c112",
        AttemptOutcome.AT_RISK,
        FIRED,
        0,
    )
    assert row.reason == f"deadline {(SENT + timedelta(minutes=5)).isoformat()}"


def test_at_risk_with_failover_also_sends_the_same_envelope_to_the_failover_queue() -> None:
    timer = escalation_timers(
        message(deadline=timedelta(minutes=5)), sent_at=SENT, kecamatan_slug=None, risk=None
    )[0]
    effects = on_at_risk(timer, now=FIRED, failover=True)
    event, copy = effects.outgoing
    assert event.routing_key == "delivery.at_risk.-.-"
    assert copy.destination is Destination.DELIVER
    assert copy.routing_key == failover_recipient("c112") == "c112_failover"
    assert copy.body == BODY
    assert copy.sequence == 3
    assert copy.deadline_at == SENT + timedelta(minutes=5)
    assert copy.message_id not in ("d-1", event.message_id), "outbox ids are unique"
    assert copy.message_id == failover_id("d-1")
    at_risk, started = effects.delivery_log
    assert at_risk.outcome is AttemptOutcome.AT_RISK
    assert (started.distribution_id, started.recipient, started.outcome) == (
        "d-1",
        "c112_failover",
        AttemptOutcome.FAILOVER_STARTED,
    )
    assert started.reason == f"copy {copy.message_id}"


def test_deadline_missed_is_one_event() -> None:
    timer = escalation_timers(
        message(deadline=timedelta(minutes=5)), sent_at=SENT, kecamatan_slug="pinang", risk="low"
    )[1]
    effects = on_deadline_missed(timer, now=FIRED)
    (event,) = effects.outgoing
    assert event.routing_key == "delivery.deadline_missed.pinang.low"
    assert json.loads(event.body)["event"] == "delivery.deadline_missed"
    (row,) = effects.delivery_log
    assert (row.distribution_id, row.outcome, row.at) == (
        "d-1",
        AttemptOutcome.DEADLINE_MISSED,
        FIRED,
    )


@pytest.mark.parametrize("failover", [True, False])
def test_the_registry_names_both_kinds(failover: bool) -> None:
    registry = handlers(failover=failover, clock=lambda: FIRED)
    timer = escalation_timers(
        message(deadline=timedelta(minutes=5)), sent_at=SENT, kecamatan_slug=None, risk=None
    )[0]
    assert set(registry) == {AT_RISK, DEADLINE_MISSED}
    effects = registry[AT_RISK](timer)
    assert len(effects.outgoing) == len(effects.delivery_log) == (2 if failover else 1)
    assert {row.at for row in effects.delivery_log} == {FIRED}
