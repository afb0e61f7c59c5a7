"""The intake service: a source report in, a durable case and its outbox rows out.

It talks to the world only through the ``Store`` port and the outbox relay's two
callbacks (what the rows it writes are held by, and who is handed them after the
commit); everything it decides comes from the pure domain modules.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from contracts.envelope import DistributionStatus
from contracts.problem import FieldError
from gateway import escalation, routing, si_lacak_perak, wilayah, workflow
from gateway.errors import InvalidReport, WebhookReplayed
from gateway.model import (
    AcceptedReport,
    IntakeResult,
    OutboxClaim,
    OutboxRow,
    QuarantinedInput,
    SignedMessage,
)
from gateway.ports import Store

REPLAYED = "webhook_replayed"


@dataclass(frozen=True, slots=True)
class IntakeService:
    store: Store
    clock: Callable[[], datetime]
    new_case_id: Callable[[], str]
    new_distribution_id: Callable[[], str]
    on_committed: Callable[[Sequence[OutboxRow]], None]
    sender_id: str
    status: DistributionStatus
    sla_scale: float = 1.0
    outbox_claim: Callable[[datetime], OutboxClaim] | None = None

    async def receive_si_lacak_perak(
        self, raw: bytes, report: object, *, message: SignedMessage | None = None
    ) -> IntakeResult:
        """Normalise, route and store one report, remembering the signed ``message`` it
        came in. Raises ``InvalidReport``, or ``WebhookReplayed`` when that message was
        taken before, after quarantining it."""
        received_at = self.clock()
        try:
            case = si_lacak_perak.normalise_report(
                report, case_id=self.new_case_id(), received_at=received_at
            )
        except InvalidReport as exc:
            await self.refuse(
                raw, reason="invalid_report", errors=exc.errors, at=received_at, message=message
            )
            raise
        kecamatan_slug = wilayah.kecamatan_slug(case.location.kecamatan.code)
        plan = routing.plan_intake(
            case,
            kecamatan_slug=kecamatan_slug,
            now=received_at,
            new_id=self.new_distribution_id,
            sender_id=self.sender_id,
            status=self.status,
            scale=self.sla_scale,
        )
        accepted = AcceptedReport(
            source_system=si_lacak_perak.SOURCE_SYSTEM,
            source_reference=case.source.reference,
            raw=raw,
            case=case,
            outgoing=plan.outgoing,
            c112_deadline_at=plan.c112_deadline_at,
            timers=escalation.timers_for(
                plan.outgoing,
                sent_at=received_at,
                kecamatan_slug=kecamatan_slug,
                risk=case.risk.level.value,
            )
            + workflow.sla_timers(
                case,
                workflow.start(case, self.sla_scale),
                workflow.STANDARDS,
                now=received_at,
                kecamatan_slug=kecamatan_slug,
                new_id=self.new_distribution_id,
            ),
            outbox_claim=None if self.outbox_claim is None else self.outbox_claim(received_at),
            message=message,
        )
        try:
            result = await self.store.accept_report(accepted)
        except WebhookReplayed:
            await self.refuse(raw, reason=REPLAYED, at=received_at)
            raise
        if not result.duplicate:
            self.on_committed(result.claimed_outbox)
        return result

    async def refuse(
        self,
        raw: bytes,
        *,
        reason: str,
        errors: list[FieldError] | tuple[FieldError, ...] = (),
        content_type: str | None = None,
        at: datetime | None = None,
        message: SignedMessage | None = None,
    ) -> str:
        """Keep refused input in quarantine, remembering the signed ``message`` it came in;
        answers its id. When that message was taken before, the input is kept as a replay
        and ``WebhookReplayed`` raised."""
        item = QuarantinedInput(
            received_at=at or self.clock(),
            source=si_lacak_perak.SOURCE_SYSTEM,
            reason=reason,
            raw=raw,
            content_type=content_type,
            errors=tuple(errors),
            message=message,
        )
        try:
            return await self.store.quarantine(item)
        except WebhookReplayed:
            await self.refuse(raw, reason=REPLAYED, content_type=content_type, at=item.received_at)
            raise
