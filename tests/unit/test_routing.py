import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from samples import valid_01_case

from contracts.case import Case, RiskLevel
from contracts.envelope import SENDER_ID, DistributionStatus, Envelope, RecipientRole
from gateway.model import Destination
from gateway.redaction import redact_case
from gateway.routing import C112_DEADLINE, IntakePlan, plan_intake, routing_key

FIXTURES = Path(__file__).parent.parent / "fixtures"
NOW = datetime(2026, 11, 30, 6, 45, 10, 398000, tzinfo=UTC)
ENVELOPE_TIMES = ("sent_at", "deadline_at", "expires_at")
CONTENT_TIMES = ("received_at", "reported_at")


def ids(*values: str) -> Callable[[], str]:
    supply: Iterator[str] = iter(values)
    return lambda: next(supply)


def plan(case: Case, *, status: DistributionStatus = DistributionStatus.ACTUAL) -> IntakePlan:
    return plan_intake(
        case,
        kecamatan_slug="pinang",
        now=NOW,
        new_id=ids("9c1e7b50-3a2f-4d8b-8e44-0f6c2a9d7e31", "0b6a4c1e-8d1f-4f0e-9d55-3c1f8f6e2a10"),
        sender_id=SENDER_ID,
        status=status,
    )


def comparable(envelope: dict[str, Any]) -> dict[str, Any]:
    """Times as instants (the fixtures write milliseconds, pydantic microseconds)."""
    out = {k: datetime.fromisoformat(v) if k in ENVELOPE_TIMES else v for k, v in envelope.items()}
    out["content"] = {
        k: datetime.fromisoformat(v) if k in CONTENT_TIMES else v
        for k, v in envelope["content"].items()
    }
    return out


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "c112" / name).read_text())
    return loaded


@pytest.mark.parametrize(
    ("words", "key"),
    [
        (("case", "created", "pinang", "high"), "case.created.pinang.high"),
        (("case", "created", "karang-tengah", "critical"), "case.created.karang-tengah.critical"),
        (("sla", "breached", "pinang", "high"), "sla.breached.pinang.high"),
        (("delivery", "parked", "c112", None), "delivery.parked.c112.-"),
        (("delivery", "at_risk", None, None), "delivery.at_risk.-.-"),
    ],
)
def test_routing_key(words: tuple[str, str, str | None, str | None], key: str) -> None:
    assert routing_key(*words) == key


@pytest.mark.parametrize(
    "words",
    [
        ("case", "created", "Pinang", "high"),
        ("case", "created", "karang tengah", "high"),
        ("case", "created", "pi.nang", "high"),
        ("case", "created", "*", "high"),
        ("case", "created", "#", "high"),
        ("case", "created", "", "high"),
        ("case", "created", "pinang\n", "high"),
        ("case.x", "created", "pinang", "high"),
        ("case", "", "pinang", "high"),
        ("case", "created", "pinang", "tinggi!"),
    ],
)
def test_routing_key_refuses_words_topics_cannot_carry(
    words: tuple[str, str, str | None, str | None],
) -> None:
    with pytest.raises(ValueError, match="routing key word"):
        routing_key(*words)


def test_a_case_needing_other_agencies_goes_to_the_events_exchange_and_to_112() -> None:
    result = plan(valid_01_case())

    assert [(m.destination, m.routing_key) for m in result.outgoing] == [
        (Destination.EVENTS, "case.created.pinang.high"),
        (Destination.DELIVER, "c112"),
    ]
    assert result.c112_deadline_at == NOW + timedelta(minutes=5)


def test_the_112_deadline_is_the_sop_step_6_time_standard() -> None:
    assert timedelta(minutes=5) == C112_DEADLINE


def test_a_case_for_uptd_ppa_alone_is_only_announced() -> None:
    result = plan(valid_01_case(needs_other_agencies=False, requested_agencies=[]))

    assert [(m.destination, m.routing_key) for m in result.outgoing] == [
        (Destination.EVENTS, "case.created.pinang.high")
    ]
    assert result.c112_deadline_at is None
    assert result.outgoing[0].deadline_at is None


def test_the_112_message_is_the_illustrated_push() -> None:
    message = plan(valid_01_case()).outgoing[1]
    expected = fixture("push-case-to-112.json")
    # The illustration was sent 14 ms after receipt; here the plan is made at receipt.
    expected["sent_at"] = NOW.isoformat()
    # The illustration predates the disability and pregnancy risk flags (see test_redaction).
    expected["content"]["risk"] |= {"disability": False, "pregnancy": False}

    body = json.loads(message.body)

    assert comparable(body) == comparable(expected)
    assert message.message_id == body["distribution_id"]
    assert message.case_id == body["case_id"]
    assert message.sequence == 1
    assert message.deadline_at == NOW + C112_DEADLINE


def test_the_event_is_the_illustrated_dashboard_push() -> None:
    message = plan(valid_01_case()).outgoing[0]
    expected = fixture("push-case-to-dashboard.json")
    expected["sent_at"] = NOW.isoformat()
    # Envelope defaults are sent; the illustration leaves them out.
    expected |= {
        "references": [],
        "recipient_roles": [],
        "keywords": [],
        "confidentiality": "victim-confidential",
    }

    body = json.loads(message.body)

    assert comparable(body) == comparable(expected)
    assert message.message_id == body["distribution_id"]
    assert message.deadline_at is None


@pytest.mark.parametrize("index", [0, 1])
def test_bodies_are_envelopes_redacted_for_their_profile(index: int) -> None:
    case = valid_01_case()
    message = plan(case).outgoing[index]

    envelope = Envelope.model_validate_json(message.body)

    assert envelope.content == redact_case(case, envelope.redaction_profile)
    assert "Dewi Lestari" not in message.body.decode()
    assert "Siti Rahmawati" not in message.body.decode()


@pytest.mark.parametrize("status", list(DistributionStatus))
def test_the_distribution_status_is_carried(status: DistributionStatus) -> None:
    bodies = [json.loads(m.body) for m in plan(valid_01_case(), status=status).outgoing]

    assert {body["status"] for body in bodies} == {status.value}


def test_each_message_gets_its_own_distribution_id() -> None:
    result = plan(valid_01_case())

    assert [m.message_id for m in result.outgoing] == [
        "9c1e7b50-3a2f-4d8b-8e44-0f6c2a9d7e31",
        "0b6a4c1e-8d1f-4f0e-9d55-3c1f8f6e2a10",
    ]


@pytest.mark.parametrize(
    ("level", "key", "keyword"),
    [
        (RiskLevel.LOW, "case.created.pinang.low", "risk:low"),
        (RiskLevel.CRITICAL, "case.created.pinang.critical", "risk:critical"),
    ],
)
def test_the_risk_level_routes_and_tags(level: RiskLevel, key: str, keyword: str) -> None:
    case = valid_01_case()
    case = case.model_copy(update={"risk": case.risk.model_copy(update={"level": level})})

    events, c112 = plan(case).outgoing

    assert events.routing_key == key
    assert keyword in json.loads(c112.body)["keywords"]
    assert json.loads(c112.body)["recipient_roles"] == [RecipientRole.C112.value]
