"""What the ops console and its JSON API show: S0 data only (ids, times, codes)."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.subscription import SubscriptionStatus


class DeliveryLogEntry(BaseModel):
    """One delivery attempt."""

    model_config = ConfigDict(extra="forbid")

    log_id: int = Field(description="Cursor of the live tail; increases with every attempt.")
    at: datetime
    distribution_id: str
    case_id: str
    recipient: str
    attempt: int
    outcome: str = Field(examples=["delivered", "retry", "parked", "gone"])
    status_code: int | None = None
    error_class: str | None = None
    latency_ms: float | None = None
    next_try_at: datetime | None = None


class DeliveryLogPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[DeliveryLogEntry]
    last_id: int = Field(description="Pass as after_id to continue after these entries.")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class RecipientKind(StrEnum):
    C112 = "c112"
    C112_FAILOVER = "c112_failover"
    WEBHOOK = "webhook"


class AtRiskKind(StrEnum):
    SLA_STEP = "sla_step"
    DELIVERY = "delivery"


class QueueDepth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str
    messages: int | None = Field(description="Ready messages; null when the broker did not say.")


class RecipientState(BaseModel):
    """One recipient: its circuit, what waits for it and how its last hour went."""

    model_config = ConfigDict(extra="forbid")

    recipient: str = Field(examples=["c112", "c112_failover", "sub-01jf..."])
    kind: RecipientKind
    agency_id: str | None = Field(None, description="The partner agency of a webhook.")
    delivering: bool = Field(
        description="A worker of this process delivers it (false: paused, or not started)."
    )
    circuit: CircuitState | None = Field(
        description="Its circuit breaker in this process; null when nothing delivers it here."
    )
    subscription_status: SubscriptionStatus | None = Field(
        None,
        description="A webhook subscription's status: paused by an admin, or gone when "
        "its partner answered 410 (resume it to deliver again); null for 112.",
    )
    queue: str
    queued: int | None = Field(
        description="Messages ready in its delivery queue; null when the broker did not say."
    )
    waiting: int = Field(
        description="Messages not settled yet (queued, in flight or in the retry ladder)."
    )
    oldest_waiting_at: datetime | None = Field(
        description="Since when the oldest of them waits (made, or last replayed)."
    )
    oldest_waiting_age_s: float | None
    delivered_last_hour: int
    failed_last_hour: int = Field(description="Attempts that did not deliver: retry, parked, gone.")


class RecipientsPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime
    recipients: list[RecipientState]
    shared_queues: list[QueueDepth] = Field(
        description="The retry ladder's queues and the parking queue, shared by every recipient."
    )


class AtRiskEntry(BaseModel):
    """An open SOP step or an undelivered message past 80 % of its time."""

    model_config = ConfigDict(extra="forbid")

    kind: AtRiskKind
    case_id: str
    kecamatan: str | None = Field(description="The kecamatan's name.")
    step: int | None = Field(None, description="The SOP 357 step (sla_step).")
    activity: str | None = Field(None, description="What the step is (sla_step).")
    recipient: str | None = Field(None, description="Who has not got it yet (delivery).")
    distribution_id: str | None = Field(None, description="The message (delivery).")
    started_at: datetime
    at_risk_at: datetime = Field(description="80 % of the time.")
    deadline_at: datetime
    seconds_left: float = Field(description="Until the deadline; negative once it is missed.")


class AtRiskPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime = Field(description="The gateway's clock: count down from here.")
    entries: list[AtRiskEntry] = Field(description="The most urgent first.")
