"""Plain domain records passed between the domain, the store and the queue layer."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from contracts.case import Case
from contracts.ops import AtRiskKind, RecipientKind
from contracts.problem import FieldError
from contracts.subscription import SubscriptionStatus
from gateway.circuit_breaker import BreakerState


class Destination(StrEnum):
    """Where an outbound message goes in the broker."""

    EVENTS = "events"  # the topic exchange; routing key <entity>.<event>.<kecamatan>.<risk>
    DELIVER = "deliver"  # one recipient's delivery queue; routing key = recipient id


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message the domain decided to send. ``body`` is the envelope exactly as signed."""

    destination: Destination
    routing_key: str
    message_id: str
    case_id: str
    sequence: int
    body: bytes
    deadline_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Timer:
    """A deadline that fires once, across restarts and processes.

    ``kind`` names its handler (``sla.warning``, ``sla.breached``, ``delivery.at_risk``,
    ``delivery.deadline_missed`` ...); ``subject`` is what it watches (an SOP step of
    the case, a distribution id) and is how it is cancelled when the work is done.
    """

    timer_id: str
    kind: str
    case_id: str
    subject: str
    fire_at: datetime
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    message: OutboundMessage


@dataclass(frozen=True, slots=True)
class OutboxClaim:
    """Outbox rows written already held by one relay (``claimant``) until ``until``."""

    claimant: str
    until: datetime


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """An inbound message whose signature held: its ``webhook-id`` and signed timestamp,
    remembered until ``keep_until`` (when the signature is out of tolerance anyway) so
    that the same message sent again is refused as a replay."""

    webhook_id: str
    signed_at: int
    seen_at: datetime
    keep_until: datetime


@dataclass(frozen=True, slots=True)
class AcceptedReport:
    """A valid source report, normalised, with what it makes the gateway send.

    With ``outbox_claim``, its outbox rows are written held by that relay, which is
    handed them at once (``IntakeResult.claimed_outbox``) instead of claiming them.
    With ``message``, the signed message it came in is remembered in the same write.
    """

    source_system: str
    source_reference: str
    raw: bytes
    case: Case
    outgoing: tuple[OutboundMessage, ...]
    c112_deadline_at: datetime | None = None
    timers: tuple[Timer, ...] = ()
    outbox_claim: OutboxClaim | None = None
    message: SignedMessage | None = None


@dataclass(frozen=True, slots=True)
class IntakeResult:
    case_id: str
    duplicate: bool
    received_at: datetime
    needs_other_agencies: bool
    c112_deadline_at: datetime | None
    claimed_outbox: tuple[OutboxRow, ...] = ()


@dataclass(frozen=True, slots=True)
class QuarantinedInput:
    """Refused input kept for audit. ``errors`` name fields, never their values. With
    ``message``, the signed message it came in is remembered in the same write."""

    received_at: datetime
    source: str
    reason: str
    raw: bytes
    content_type: str | None = None
    errors: tuple[FieldError, ...] = ()
    message: SignedMessage | None = None


class AttemptOutcome(StrEnum):
    """A push's outcome, or an escalation of a message's deadline (no push: attempt 0)."""

    DELIVERED = "delivered"
    RETRY = "retry"
    PARKED = "parked"
    GONE = "gone"
    AT_RISK = "at_risk"
    DEADLINE_MISSED = "deadline_missed"
    FAILOVER_STARTED = "failover_started"


ESCALATION_OUTCOMES = frozenset(
    {AttemptOutcome.AT_RISK, AttemptOutcome.DEADLINE_MISSED, AttemptOutcome.FAILOVER_STARTED}
)


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One row of the delivery log: S0 only."""

    distribution_id: str
    case_id: str
    recipient: str
    attempt: int
    at: datetime
    outcome: AttemptOutcome
    latency_ms: float | None = None
    status_code: int | None = None
    error_class: str | None = None
    next_try_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class TimerEffects:
    """What a fired timer makes the store write in the transaction that fires it."""

    outgoing: tuple[OutboundMessage, ...] = ()
    delivery_log: tuple[DeliveryAttempt, ...] = ()
    timers: tuple[Timer, ...] = ()  # armed by this one's firing


@dataclass(frozen=True, slots=True)
class PushResponse:
    """What a recipient answered to one POST."""

    status: int
    latency_s: float
    headers: Mapping[str, str] = field(default_factory=dict)
    body_head: str = ""


# Delivery: the parking lot and 112's functional receipts


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """A message a recipient could not take, kept with its reason until someone replays it.

    ``attempt`` counts rounds through the retry ladder, ``tries`` single pushes.
    ``parked_id`` is 0 until the store has it.
    """

    distribution_id: str
    recipient: str
    case_id: str
    sequence: int
    attempt: int
    tries: int
    reason: str
    parked_at: datetime
    body: bytes
    deadline_at: datetime | None = None
    error_class: str | None = None
    parked_id: int = 0
    replayed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParkedSelector:
    """Which parked messages to list or replay; every field ``None`` means all of them."""

    distribution_id: str | None = None
    case_id: str | None = None
    recipient: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A functional acknowledgement from 112 for one distribution (S0 except ``reason``)."""

    webhook_id: str
    distribution_id: str
    status: str
    at: datetime
    received_at: datetime
    case_id: str | None = None
    by_role: str | None = None
    by_id: str | None = None
    ticket: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryLogQuery:
    """A filter over the delivery log; ``after_id`` pages forward (the live tail)."""

    after_id: int = 0
    case_id: str | None = None
    distribution_id: str | None = None
    recipient: str | None = None
    outcome: AttemptOutcome | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class LoggedAttempt:
    """A delivery-log row with its id, the cursor of the live tail."""

    log_id: int
    attempt: DeliveryAttempt


# ---- Ops console (issue 6) ----


@dataclass(frozen=True, slots=True)
class RecipientActivity:
    """What the store knows of one recipient: messages not settled yet (waiting since
    they were made or last replayed), and its attempts since a moment."""

    recipient: str
    waiting: int = 0
    oldest_waiting_since: datetime | None = None
    delivered: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class RecipientLive:
    """A recipient as this process delivers it: its queue and its circuit breaker
    (``None`` when no worker of this process delivers it, e.g. a paused webhook)."""

    recipient: str
    kind: RecipientKind
    queue: str
    circuit: BreakerState | None
    agency_id: str | None = None
    subscription_status: SubscriptionStatus | None = None


@dataclass(frozen=True, slots=True)
class AtRisk:
    """An open SOP step, or an undelivered message with a deadline, past its warning
    point (80 % of its time). S0/S1 only: ids, the kecamatan code, times."""

    kind: AtRiskKind
    case_id: str
    kecamatan_code: str
    started_at: datetime
    warning_at: datetime
    deadline_at: datetime
    step: int | None = None
    recipient: str | None = None
    distribution_id: str | None = None
