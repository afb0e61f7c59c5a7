"""What a partner agency receives: the subscriptions an event matches and the message
each gets, redacted for the subscription's role.

Events on the topic exchange carry the dashboard profile only. For a case event the
partner's content is made afresh from the stored case with the partner's own profile;
any other event is passed on as it is, labelled with the dashboard profile it was
redacted with, which every role is cleared for.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from contracts.case import CASE_SCHEMA, Case
from contracts.envelope import Envelope, RecipientRole
from contracts.subscription import DeliveryMode, SubscriptionStatus
from gateway import topics
from gateway.redaction import redact_case

# Fixed namespace for partner distribution ids: uuid5(event id + subscription id).
PARTNER_IDS = uuid.UUID("3f0b8d0e-2c4e-5d51-9a53-6b0d7c1e9a44")
SECRET_HINT_CHARS = 4


@dataclass(frozen=True, slots=True)
class Subscription:
    """A partner subscription as the gateway keeps it (the secret included)."""

    subscription_id: str
    agency_id: str
    role: RecipientRole
    patterns: tuple[str, ...]
    mode: DeliveryMode
    status: SubscriptionStatus
    created_at: datetime
    updated_at: datetime
    url: str | None = None
    secret: str | None = None
    previous_secret: str | None = None
    previous_until: datetime | None = None
    """The secret before the last rotation, signing beside ``secret`` until then."""

    def __post_init__(self) -> None:
        for pattern in self.patterns:
            topics.check_pattern(pattern)
        webhook = self.mode is DeliveryMode.WEBHOOK
        if (webhook and not (self.url and self.secret)) or (
            not webhook and (self.url is not None or self.secret is not None)
        ):
            raise ValueError("a webhook subscription has a URL and a secret, an AMQP one neither")

    @property
    def active(self) -> bool:
        return self.status is SubscriptionStatus.ACTIVE

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """What its pushes are signed with at ``now`` (one signature per secret)."""
        if self.secret is None:
            return ()
        previous = self.previous_secret
        if previous is None or self.previous_until is None or now >= self.previous_until:
            return (self.secret,)
        return (self.secret, previous)

    def previous_valid_until(self, now: datetime) -> datetime | None:
        return self.previous_until if len(self.signing_secrets(now)) > 1 else None

    @property
    def secret_hint(self) -> str | None:
        return None if self.secret is None else "…" + self.secret[-SECRET_HINT_CHARS:]


class UnredactableEvent(ValueError):
    """An event whose content cannot be passed on safely (not dashboard-redacted, and
    its case unknown)."""


def subscribers(subscriptions: Iterable[Subscription], routing_key: str) -> list[Subscription]:
    """The subscriptions whose patterns match ``routing_key``, paused ones included (their
    queue keeps filling while they are paused)."""
    return [s for s in subscriptions if topics.matches_any(s.patterns, routing_key)]


def partner_distribution_id(event_distribution_id: str, subscription_id: str) -> str:
    """The same event for the same subscription is always the same distribution."""
    return str(uuid.uuid5(PARTNER_IDS, f"{event_distribution_id}/{subscription_id}"))


def partner_envelope(
    event: Envelope, routing_key: str, case: Case | None, subscription: Subscription
) -> Envelope:
    """The event as ``subscription`` may receive it; raises ``UnredactableEvent``."""
    if event.schema_ == CASE_SCHEMA and case is not None:
        if case.case_id != event.case_id:
            raise UnredactableEvent("the stored case is not the event's case")
        profile, content = subscription.role, redact_case(case, subscription.role)
    elif event.redaction_profile is RecipientRole.DASHBOARD:
        profile, content = RecipientRole.DASHBOARD, dict(event.content)
    else:
        raise UnredactableEvent(f"event content redacted for {event.redaction_profile}")
    return event.model_copy(
        update={
            "distribution_id": partner_distribution_id(
                event.distribution_id, subscription.subscription_id
            ),
            "recipient_roles": [subscription.role],
            "routing_key": routing_key,
            "deadline_at": None,
            "redaction_profile": profile,
            "content": content,
        }
    )
