"""The delivery section of the case view: per message and recipient, technical delivery,
escalations, failover and 112's functional receipt, apart."""

from datetime import UTC, datetime, timedelta

from samples import valid_01_case

from gateway.case_views import case_view, delivery_views
from gateway.escalation import failover_id
from gateway.model import AttemptOutcome, DeliveryAttempt, ReceiptRecord
from gateway.workflow import C112Stream, CaseSnapshot

T0 = datetime(2026, 11, 30, 6, 45, 10, tzinfo=UTC)
S = timedelta(seconds=1)
CASE = valid_01_case(received_at=T0)
SNAPSHOT = CaseSnapshot(case=CASE, workflow=None, c112=C112Stream(2, ("d-1", "d-2")))


def row(
    distribution_id: str,
    outcome: AttemptOutcome,
    seconds: int,
    *,
    recipient: str = "c112",
    status_code: int | None = None,
) -> DeliveryAttempt:
    return DeliveryAttempt(
        distribution_id=distribution_id,
        case_id=CASE.case_id,
        recipient=recipient,
        attempt=0 if outcome in (AttemptOutcome.AT_RISK, AttemptOutcome.DEADLINE_MISSED) else 1,
        at=T0 + seconds * S,
        outcome=outcome,
        status_code=status_code,
    )


def receipt(distribution_id: str, status: str, seconds: int) -> ReceiptRecord:
    return ReceiptRecord(
        webhook_id=f"w-{status}",
        distribution_id=distribution_id,
        status=status,
        at=T0 + seconds * S,
        received_at=T0 + (seconds + 1) * S,
        case_id=CASE.case_id,
        ticket="112-77",
        reason="Korban tidak dapat dihubungi" if status == "rejected" else None,
    )


LOG = [
    row("d-1", AttemptOutcome.RETRY, 1, status_code=503),
    row("d-1", AttemptOutcome.AT_RISK, 240),
    row("d-1", AttemptOutcome.FAILOVER_STARTED, 240, recipient="c112_failover"),
    row(failover_id("d-1"), AttemptOutcome.DELIVERED, 241, recipient="c112_failover"),
    row("d-1", AttemptOutcome.RETRY, 250, status_code=503),
    row("d-1", AttemptOutcome.DEADLINE_MISSED, 300),
    row("d-1", AttemptOutcome.DELIVERED, 400, status_code=202),
    row("e-1", AttemptOutcome.DELIVERED, 2, recipient="partner-1", status_code=200),
]


def test_each_message_shows_delivery_escalations_failover_and_receipt_apart() -> None:
    first, second, partner = delivery_views(
        SNAPSHOT, LOG, [receipt("d-1", "received", 401), receipt("d-1", "accepted", 420)]
    )
    assert first.model_dump(exclude={"receipt"}) == {
        "distribution_id": "d-1",
        "recipient": "c112",
        "delivered": True,
        "delivered_at": T0 + 400 * S,
        "attempts": 3,
        "last_outcome": "delivered",
        "last_at": T0 + 400 * S,
        "last_status_code": 202,
        "at_risk_at": T0 + 240 * S,
        "deadline_missed_at": T0 + 300 * S,
        "failover_started_at": T0 + 240 * S,
        "failover_delivered_at": T0 + 241 * S,
    }
    assert first.receipt is not None
    assert (first.receipt.status.value, first.receipt.at, first.receipt.ticket) == (
        "accepted",
        T0 + 420 * S,
        "112-77",
    )
    assert (second.distribution_id, second.delivered, second.attempts) == ("d-2", False, 0)
    assert (second.last_outcome, second.at_risk_at, second.receipt) == (None, None, None)
    assert (partner.distribution_id, partner.recipient, partner.delivered) == (
        "e-1",
        "partner-1",
        True,
    )


def test_a_message_retrying_is_not_delivered_and_a_rejection_shows_without_its_reason() -> None:
    (first, _) = delivery_views(SNAPSHOT, LOG[:2], [receipt("d-1", "rejected", 500)])
    assert (first.delivered, first.last_outcome, first.last_status_code) == (False, "retry", 503)
    assert first.failover_started_at is None
    assert first.receipt is not None
    assert first.receipt.status.value == "rejected"
    assert "tidak dapat" not in first.model_dump_json(), "the reason is not S0"


def test_the_case_view_carries_the_delivery_section_for_every_role() -> None:
    views = delivery_views(SNAPSHOT, LOG, [])
    for full in (True, False):
        view = case_view(SNAPSHOT, now=T0 + 500 * S, scale=1, full=full, delivery=views)
        assert [(d.distribution_id, d.recipient) for d in view.delivery] == [
            ("d-1", "c112"),
            ("d-2", "c112"),
            ("e-1", "partner-1"),
        ]
