import uuid
from datetime import UTC, datetime

import pytest
from samples import valid_01_case

from contracts.case import CASE_SCHEMA
from contracts.envelope import DistributionKind, Envelope, RecipientRole
from contracts.subscription import DeliveryMode, SubscriptionStatus
from gateway.partners import (
    Subscription,
    UnredactableEvent,
    partner_distribution_id,
    partner_envelope,
    subscribers,
)
from gateway.redaction import redact_case
from gateway.topics import InvalidPattern

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
KEY = "case.created.pinang.high"


def subscription(
    role: RecipientRole = RecipientRole.POLICE,
    patterns: tuple[str, ...] = ("case.#",),
    *,
    subscription_id: str = "sub-1",
    mode: DeliveryMode = DeliveryMode.AMQP,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
) -> Subscription:
    webhook = mode is DeliveryMode.WEBHOOK
    return Subscription(
        subscription_id=subscription_id,
        agency_id="polres",
        role=role,
        patterns=patterns,
        mode=mode,
        status=status,
        created_at=NOW,
        updated_at=NOW,
        url="http://partner.example/hook" if webhook else None,
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" if webhook else None,
    )


def event(**changes: object) -> Envelope:
    case = valid_01_case()
    values: dict[str, object] = {
        "distribution_id": "2f1c6b57-7a0e-4d33-9b8e-1f2a3c4d5e6f",
        "sent_at": NOW,
        "kind": DistributionKind.REPORT,
        "schema": CASE_SCHEMA,
        "case_id": case.case_id,
        "sequence": 1,
        "routing_key": KEY,
        "keywords": ["kdrt"],
        "redaction_profile": RecipientRole.DASHBOARD,
        "content": redact_case(case, RecipientRole.DASHBOARD),
    }
    values.update(changes)
    return Envelope.model_validate(values)


@pytest.mark.parametrize("role", list(RecipientRole))
def test_a_case_event_is_made_anew_for_the_role(role: RecipientRole) -> None:
    case = valid_01_case()

    envelope = partner_envelope(event(), KEY, case, subscription(role))

    assert envelope.redaction_profile is role
    assert envelope.content == redact_case(case, role)
    assert envelope.recipient_roles == [role]
    assert (envelope.case_id, envelope.sequence, envelope.kind) == (case.case_id, 1, "report")
    assert envelope.schema_ == CASE_SCHEMA
    assert envelope.routing_key == KEY


def test_the_same_event_and_subscription_make_the_same_distribution_id() -> None:
    first = partner_envelope(event(), KEY, valid_01_case(), subscription())
    again = partner_envelope(event(), KEY, valid_01_case(), subscription())
    other = partner_envelope(event(), KEY, valid_01_case(), subscription(subscription_id="sub-2"))

    assert first.distribution_id == again.distribution_id
    assert first.distribution_id != other.distribution_id
    assert first.distribution_id != event().distribution_id
    assert uuid.UUID(first.distribution_id).version == 5
    assert first.distribution_id == partner_distribution_id(event().distribution_id, "sub-1")


def test_a_non_case_event_passes_as_the_dashboard_content_it_carries() -> None:
    sla = event(schema="sla-event/1", content={"step": 2, "event": "breached"})

    envelope = partner_envelope(sla, "sla.breached.pinang.high", None, subscription())

    assert envelope.redaction_profile is RecipientRole.DASHBOARD
    assert envelope.content == {"step": 2, "event": "breached"}


def test_a_case_event_whose_case_is_unknown_passes_as_dashboard_content() -> None:
    envelope = partner_envelope(event(), KEY, None, subscription(RecipientRole.POLICE))

    assert envelope.redaction_profile is RecipientRole.DASHBOARD
    assert envelope.content == redact_case(valid_01_case(), RecipientRole.DASHBOARD)


def test_an_event_not_redacted_for_dashboards_is_never_passed_on() -> None:
    c112 = event(
        redaction_profile=RecipientRole.C112,
        content=redact_case(valid_01_case(), RecipientRole.C112),
    )

    with pytest.raises(UnredactableEvent):
        partner_envelope(c112, KEY, None, subscription(RecipientRole.DASHBOARD))


def test_another_case_is_never_used() -> None:
    other = valid_01_case().model_copy(
        update={"case_id": "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1B"}
    )

    with pytest.raises(UnredactableEvent):
        partner_envelope(event(), KEY, other, subscription())


def test_subscribers_are_those_whose_patterns_match_paused_included() -> None:
    cipondoh = subscription(patterns=("case.*.cipondoh.#",), subscription_id="a")
    pinang = subscription(patterns=("sla.#", "case.*.pinang.*"), subscription_id="b")
    paused = subscription(
        patterns=("#",),
        subscription_id="c",
        mode=DeliveryMode.WEBHOOK,
        status=SubscriptionStatus.PAUSED,
    )

    found = subscribers([cipondoh, pinang, paused], KEY)

    assert [s.subscription_id for s in found] == ["b", "c"]


def test_a_subscription_refuses_a_bad_pattern() -> None:
    with pytest.raises(InvalidPattern):
        subscription(patterns=("case.created",))


@pytest.mark.parametrize(
    ("mode", "url", "secret"),
    [
        (DeliveryMode.WEBHOOK, None, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        (DeliveryMode.WEBHOOK, "http://x.example/", None),
        (DeliveryMode.AMQP, "http://x.example/", None),
    ],
)
def test_delivery_fields_follow_the_mode(
    mode: DeliveryMode, url: str | None, secret: str | None
) -> None:
    with pytest.raises(ValueError, match="webhook subscription"):
        Subscription(
            subscription_id="s",
            agency_id="a",
            role=RecipientRole.HEALTH,
            patterns=("#",),
            mode=mode,
            status=SubscriptionStatus.ACTIVE,
            created_at=NOW,
            updated_at=NOW,
            url=url,
            secret=secret,
        )


def test_the_secret_hint_shows_only_the_last_characters() -> None:
    hint = subscription(mode=DeliveryMode.WEBHOOK).secret_hint

    assert hint == "…LaSw"
