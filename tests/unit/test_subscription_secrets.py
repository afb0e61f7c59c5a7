"""What a webhook subscription's pushes are signed with, before, during and after the
overlap of a rotation."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from contracts.envelope import RecipientRole
from contracts.subscription import DeliveryMode, SubscriptionStatus
from gateway.partners import Subscription

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
UNTIL = T0 + timedelta(hours=1)
OLD, NEW = "whsec_" + "A" * 32, "whsec_" + "B" * 32
BEFORE = Subscription(
    subscription_id="sub-a",
    agency_id="polres",
    role=RecipientRole.POLICE,
    patterns=("case.#",),
    mode=DeliveryMode.WEBHOOK,
    status=SubscriptionStatus.ACTIVE,
    created_at=T0,
    updated_at=T0,
    url="https://partner.example/hook",
    secret=OLD,
)
ROTATED = replace(BEFORE, secret=NEW, previous_secret=OLD, previous_until=UNTIL)
AMQP = replace(BEFORE, mode=DeliveryMode.AMQP, url=None, secret=None)


@pytest.mark.parametrize(
    ("subscription", "now", "secrets", "previous_until"),
    [
        (BEFORE, T0, (OLD,), None),
        (ROTATED, T0, (NEW, OLD), UNTIL),
        (ROTATED, UNTIL - timedelta(microseconds=1), (NEW, OLD), UNTIL),
        (ROTATED, UNTIL, (NEW,), None),
        (ROTATED, UNTIL + timedelta(days=9), (NEW,), None),
        (replace(ROTATED, previous_until=T0), T0, (NEW,), None),
        (AMQP, T0, (), None),
    ],
)
def test_signing_secrets(
    subscription: Subscription,
    now: datetime,
    secrets: tuple[str, ...],
    previous_until: datetime | None,
) -> None:
    assert subscription.signing_secrets(now) == secrets
    assert subscription.previous_valid_until(now) == previous_until
