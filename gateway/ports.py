"""The ports the domain and the service layer talk through; adapters implement them."""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from contracts.case import Case
from contracts.subscription import SubscriptionStatus
from gateway.audit import Actor, AuditEntry, AuditRow
from gateway.case_messages import CaseDecision
from gateway.model import (
    AcceptedReport,
    DeliveryAttempt,
    IntakeResult,
    OutboundMessage,
    OutboxRow,
    ParkedMessage,
    ParkedSelector,
    PushResponse,
    QuarantinedInput,
    ReceiptRecord,
    Timer,
    TimerEffects,
)
from gateway.partners import Subscription
from gateway.workflow import CaseSnapshot


class Store(Protocol):
    """Durable state: cases, raw reports, the outbox, quarantine and the delivery log."""

    async def accept_report(self, report: AcceptedReport) -> IntakeResult:
        """Write the raw report, the case and its outbox rows in one transaction.

        When the source reference was accepted before, write nothing and answer the
        earlier case with ``duplicate=True``. Raises ``StoreUnavailable`` when the
        write could not be made durable. With ``report.outbox_claim``, the outbox rows
        are written held by that relay and answered in ``claimed_outbox``. With
        ``report.message``, that signed message is remembered in the same transaction;
        when it was taken before, write nothing and raise ``WebhookReplayed``.
        """
        ...

    async def quarantine(self, item: QuarantinedInput) -> str:
        """Keep refused input; answers the quarantine id. With ``item.message``, that
        signed message is remembered in the same transaction; when it was taken before,
        write nothing and raise ``WebhookReplayed``."""
        ...

    async def claim_outbox(
        self, claimant: str, limit: int, *, now: datetime, lease_s: float, own: bool = True
    ) -> list[OutboxRow]:
        """Unpublished rows, oldest first, that no other claimant holds: held by
        ``claimant`` for ``lease_s`` (its own earlier claims are renewed; with
        ``own=False`` the rows it still holds are left alone)."""
        ...

    async def release_outbox(self, claimant: str, ids: Sequence[int]) -> None:
        """Give back claimed rows that were not published, for any relay to take."""
        ...

    async def mark_published(self, ids: Sequence[int], at: datetime) -> None: ...

    async def record_attempt(self, attempt: DeliveryAttempt) -> None:
        """Append one row to the delivery log."""
        ...

    async def get_case(self, case_id: str) -> Case | None: ...

    async def schedule_timers(self, timers: Sequence[Timer]) -> None:
        """Add timers (those of an accepted report come with ``accept_report``)."""
        ...

    async def cancel_timers(self, *, subject: str) -> int:
        """Cancel every unfired timer watching ``subject``; answers how many."""
        ...

    async def fire_due_timers(
        self,
        now: datetime,
        limit: int,
        handle: Callable[[Timer], TimerEffects],
    ) -> list[Timer]:
        """In one transaction: take unfired timers due by ``now``, mark them fired, and
        write the outbox rows and delivery-log rows ``handle`` (pure) makes of each. A
        timer fires once even with several gateway processes."""
        ...

    async def next_timer_due(self) -> datetime | None:
        """When the earliest timer neither fired nor cancelled is due; None if there is none."""
        ...

    # Delivery: per-case order, the parking lot, receipts

    async def record_delivered(
        self, attempt: DeliveryAttempt, *, sequence: int, escalation_subjects: Sequence[str]
    ) -> None:
        """In one write: the delivered ``attempt`` in the delivery log, its message
        settled as delivered, and the escalation timers of ``escalation_subjects``
        cancelled."""
        ...

    async def earlier_unsettled(self, *, case_id: str, recipient: str, sequence: int) -> str | None:
        """The distribution id of an earlier message of the case for this recipient that
        is not settled yet, or ``None`` when nothing earlier is outstanding."""
        ...

    async def already_delivered(self, *, distribution_id: str, recipient: str) -> bool:
        """Whether this message reached this recipient before (a copy the relay published
        twice, or one the broker redelivered after its push went through)."""
        ...

    async def enqueue_outbound(self, messages: Sequence[OutboundMessage]) -> None:
        """Add outbox rows for messages made after intake (status reports, replays)."""
        ...

    async def park(self, message: ParkedMessage) -> bool:
        """Keep a parked message and settle it as parked; ``False`` when that message
        is already waiting in the parking lot for that recipient."""
        ...

    async def parked(self, selector: ParkedSelector, limit: int = 1000) -> list[ParkedMessage]:
        """Parked messages not replayed yet, oldest first."""
        ...

    async def mark_replayed(self, parked_ids: Sequence[int], at: datetime, *, by: Actor) -> None:
        """Take messages out of the parking lot and unsettle them: they are pending again;
        the audit log names ``by``."""
        ...

    async def record_receipt(self, receipt: ReceiptRecord) -> tuple[ReceiptRecord, bool]:
        """Keep a receipt (its case looked up from the outbox); answers it and whether its
        ``webhook_id`` was recorded before (then nothing is written)."""
        ...

    async def receipts(self, *, case_id: str) -> list[ReceiptRecord]:
        """The receipts of a case, oldest first."""
        ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""
        ...

    async def close(self) -> None: ...


class Pusher(Protocol):
    """One signed HTTP POST to a recipient.

    Answers whatever status the recipient gave; raises ``TransientDeliveryError`` for
    timeouts and connection errors. Deciding what a status means is not its job.
    """

    async def push(self, url: str, body: bytes, headers: Mapping[str, str]) -> PushResponse: ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...


# ---- Partner subscriptions (issue 5) ----


class SubscriptionStore(Protocol):
    """Durable partner subscriptions, secrets included."""

    async def add_subscription(self, subscription: Subscription, *, by: Actor) -> None:
        """Keep it; ``by`` is who made it, for the audit log (as in the changes below)."""
        ...

    async def subscriptions(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        ...

    async def subscription(self, subscription_id: str) -> Subscription | None: ...

    async def set_subscription_status(
        self,
        subscription_id: str,
        status: SubscriptionStatus,
        at: datetime,
        *,
        by: Actor,
        only_from: SubscriptionStatus | None = None,
    ) -> Subscription | None:
        """Answers the subscription as it is now, ``None`` when there is no such one; with
        ``only_from``, changes it only if that is its status."""
        ...

    async def rotate_subscription_secret(
        self,
        subscription_id: str,
        secret: str,
        previous_until: datetime,
        at: datetime,
        *,
        by: Actor,
    ) -> Subscription | None: ...

    async def forget_replaced_secrets(self, now: datetime) -> int:
        """Erases the replaced secrets whose overlap ended by ``now``; answers how many."""
        ...

    async def remove_subscription(self, subscription_id: str, *, by: Actor) -> bool: ...


class PartnerChannels(Protocol):
    """The broker side of subscriptions: each one's queue and, for webhooks, its worker."""

    def queue_of(self, subscription: Subscription) -> str:
        """The queue that holds the subscription's messages."""
        ...

    async def open(self, subscription: Subscription) -> None:
        """Declare its queue; start delivering when it is an active webhook subscription."""
        ...

    async def pause(self, subscription: Subscription) -> None:
        """Stop delivering; its queue keeps filling."""
        ...

    async def resume(self, subscription: Subscription) -> None: ...

    async def rekey(self, subscription: Subscription) -> None:
        """Sign its pushes from now on with ``subscription.signing_secrets``."""
        ...

    async def close(
        self, subscription: Subscription, remaining: Sequence[Subscription] = ()
    ) -> None:
        """Stop delivering and delete its queue, messages included; ``remaining`` are the
        subscriptions left, whose patterns stay bound."""
        ...


# ---- SOP workflow (issue 4) ----


class CaseStore(Protocol):
    """Each case's place in SOP 357, its event history and its SLA marks."""

    async def case_snapshot(self, case_id: str) -> CaseSnapshot | None: ...

    async def delivery_log(
        self,
        *,
        case_id: str | None = None,
        distribution_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryAttempt]:
        """Delivery-log rows, newest first."""
        ...

    async def receipts(self, *, case_id: str) -> list[ReceiptRecord]:
        """112's receipts for the case, oldest first."""
        ...

    async def apply_case_event(
        self,
        case_id: str,
        decide: Callable[[CaseSnapshot], CaseDecision],
        *,
        via: str | None = None,
    ) -> CaseDecision | None:
        """In one transaction: read the case, let ``decide`` (pure) judge the event, and
        write the workflow, the history entry, its audit row (with ``via``, the credential
        it came with, when given), the timers and the outbox rows it decided. ``None`` when
        there is no such case; whatever ``decide`` raises rolls it all back."""
        ...

    async def case_snapshots(
        self,
        *,
        received_between: tuple[datetime, datetime] | None = None,
        ended_between: tuple[datetime, datetime] | None = None,
    ) -> list[CaseSnapshot]:
        """Cases received (or ended) in ``[from, to)``, oldest first."""
        ...

    async def append_audit(self, entry: AuditEntry) -> AuditRow:
        """Append to the audit log in a transaction of its own (for reads of personal
        data; changes are audited inside their own transaction)."""
        ...


# ---- Ops console (issue 6) ----


class DeliveryObserver(Protocol):
    """Told of each delivery attempt once it is logged, with its message's deadline."""

    def attempted(self, attempt: DeliveryAttempt, deadline_at: datetime | None) -> None: ...
