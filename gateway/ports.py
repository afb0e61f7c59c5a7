"""The ports the domain and the service layer talk through; adapters implement them."""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from contracts.case import Case
from gateway.model import (
    AcceptedReport,
    AttemptOutcome,
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
)


class Store(Protocol):
    """Durable state: cases, raw reports, the outbox, quarantine and the delivery log."""

    async def accept_report(self, report: AcceptedReport) -> IntakeResult:
        """Write the raw report, the case and its outbox rows in one transaction.

        When the source reference was accepted before, write nothing and answer the
        earlier case with ``duplicate=True``. Raises ``StoreUnavailable`` when the
        write could not be made durable.
        """
        ...

    async def quarantine(self, item: QuarantinedInput) -> str:
        """Keep refused input; answers the quarantine id."""
        ...

    async def pending_outbox(self, limit: int) -> list[OutboxRow]:
        """Unpublished outbox rows, oldest first."""
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
        handle: Callable[[Timer], Sequence[OutboundMessage]],
    ) -> list[Timer]:
        """In one transaction: take unfired timers due by ``now``, mark them fired, and
        write the outbox rows ``handle`` (pure) makes of each. A timer fires once even
        with several gateway processes."""
        ...

    # Delivery: per-case order, the parking lot, receipts

    async def settle(
        self,
        *,
        distribution_id: str,
        recipient: str,
        case_id: str,
        sequence: int,
        outcome: AttemptOutcome,
        at: datetime,
    ) -> None:
        """Record that a message reached a final state for a recipient (delivered,
        parked, gone); later messages of its case may then go."""
        ...

    async def earlier_unsettled(self, *, case_id: str, recipient: str, sequence: int) -> str | None:
        """The distribution id of an earlier message of the case for this recipient that
        is not settled yet, or ``None`` when nothing earlier is outstanding."""
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

    async def mark_replayed(self, parked_ids: Sequence[int], at: datetime) -> None:
        """Take messages out of the parking lot and unsettle them: they are pending again."""
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
