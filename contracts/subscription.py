"""Partner subscriptions: who receives which case topics, redacted for which role, and how.

A subscription names an agency, the recipient role whose redaction profile applies,
AMQP topic patterns over the event routing keys ``<entity>.<event>.<kecamatan>.<risk>``
and a delivery mode: signed webhooks to a URL, or the agency's own AMQP queue.
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.envelope import RecipientRole

AGENCY_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
TOPIC_PATTERN = r"^(\*|#|[a-z0-9_-]+)(\.(\*|#|[a-z0-9_-]+))*$"
SECRET_PATTERN = r"^whsec_[A-Za-z0-9+/=]{22,}$"  # noqa: S105 - a shape, not a secret

AgencyId = Annotated[
    str,
    Field(
        pattern=AGENCY_ID_PATTERN,
        description="One routing-key word naming the agency: lower case, digits, '_' and '-'.",
        examples=["polres-tangerang", "rsud-kota-tangerang"],
    ),
]
TopicPattern = Annotated[
    str,
    Field(
        pattern=TOPIC_PATTERN,
        max_length=255,
        description="AMQP topic pattern over <entity>.<event>.<kecamatan>.<risk>: "
        "'*' is one word, '#' zero or more, each only as a whole word.",
        examples=["case.*.cipondoh.#", "status.#", "sla.breached.#"],
    ),
]


class DeliveryMode(StrEnum):
    WEBHOOK = "webhook"
    AMQP = "amqp"


class SubscriptionStatus(StrEnum):
    """``active`` delivers; ``paused`` by an admin, or ``gone`` because the partner's
    endpoint answered 410 Gone, delivers nothing while its queue keeps filling, until
    resumed."""

    ACTIVE = "active"
    PAUSED = "paused"
    GONE = "gone"


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookDelivery(_Contract):
    """Standard Webhooks POSTs to ``url``, signed with the subscription's own secret."""

    mode: Literal[DeliveryMode.WEBHOOK]
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    secret: str | None = Field(
        None,
        pattern=SECRET_PATTERN,
        description="whsec_ secret to sign with; the gateway makes one when left out. "
        "Answered once, when the subscription is created.",
    )


class AmqpDelivery(_Contract):
    """The agency consumes its own durable queue ``<namespace>.partner.<agency_id>``."""

    mode: Literal[DeliveryMode.AMQP]


class NewSubscription(_Contract):
    """The body of ``POST /v1/subscriptions``."""

    agency_id: AgencyId
    role: RecipientRole = Field(description="Whose redaction profile the agency receives.")
    patterns: list[TopicPattern] = Field(min_length=1, max_length=20)
    delivery: WebhookDelivery | AmqpDelivery = Field(discriminator="mode")


MAX_PREVIOUS_VALID_S = 7 * 24 * 3600


class NewSecret(_Contract):
    """The body of ``POST /v1/subscriptions/{subscription_id}/secret``."""

    secret: str | None = Field(
        None,
        pattern=SECRET_PATTERN,
        description="whsec_ secret to sign with from now on; the gateway makes one when "
        "left out. Answered once, in this answer.",
    )
    previous_valid_s: int = Field(
        86400,
        ge=0,
        le=MAX_PREVIOUS_VALID_S,
        description="How long pushes also carry a signature made with the secret replaced "
        "(seconds), so the partner can switch without refusing one; 0 for a leaked secret.",
    )


class DeliveryView(_Contract):
    """How a subscription is delivered, without its secret."""

    mode: DeliveryMode
    url: str | None = None
    secret_hint: str | None = Field(
        None, description="The last four characters of the webhook secret."
    )
    previous_secret_until: AwareDatetime | None = Field(
        None,
        description="Until when pushes also carry a signature made with the secret the "
        "last rotation replaced.",
    )
    queue: str = Field(
        description="The queue holding its messages: the delivery queue of a webhook "
        "subscription, the agency's own queue in AMQP mode."
    )


class SubscriptionView(_Contract):
    subscription_id: str
    agency_id: AgencyId
    role: RecipientRole
    patterns: list[str]
    delivery: DeliveryView
    status: SubscriptionStatus
    created_at: AwareDatetime
    updated_at: AwareDatetime


class SubscriptionCreated(SubscriptionView):
    """The answer to a new subscription or a new secret: the only time that webhook
    secret is shown."""

    secret: str | None = Field(None, description="The webhook secret; never shown again.")


class SubscriptionList(_Contract):
    subscriptions: list[SubscriptionView]
