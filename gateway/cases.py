"""The case service: staff drive a case through SOP 357; the unit reads it and its reports.

It talks to the world only through the ``CaseStore`` port and wake-up callbacks (the
outbox relay, the timer service); what an event does is decided by the pure domain.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from contracts.problem import FieldError
from contracts.workflow import (
    CaseEventRequest,
    CaseView,
    EventType,
    SimfoniExport,
    SlaReport,
    StaffRole,
)
from gateway import audit, case_views, wilayah
from gateway.case_messages import CaseDecision, Sending, decide
from gateway.errors import GatewayError
from gateway.ports import CaseStore
from gateway.workflow import CaseSnapshot, InvalidEvent

DELIVERY_LOG_LIMIT = 5000  # the newest rows of a case's delivery log its view reads


class CaseNotFound(GatewayError):
    pass


@dataclass(frozen=True, slots=True)
class CaseService:
    store: CaseStore
    clock: Callable[[], datetime]
    scale: float
    sending: Sending
    on_committed: Callable[[], None]

    async def record_event(
        self, case_id: str, event: CaseEventRequest, role: StaffRole, *, via: str | None = None
    ) -> CaseSnapshot:
        """Apply one event; answers the case after it. ``via`` names the credential it
        came with (its audit row keeps it). Raises ``CaseNotFound`` and the workflow's
        ``StepNotYours`` / ``InvalidEvent`` / ``IllegalTransition``."""
        other = event.duplicate_of if event.type is EventType.DUPLICATE_OF else None
        if other is not None and await self.store.case_snapshot(other) is None:
            raise InvalidEvent([FieldError(pointer="/duplicate_of", detail="no such case is kept")])
        now = self.clock()

        def judge(snapshot: CaseSnapshot) -> CaseDecision:
            return decide(
                snapshot,
                event,
                role=role,
                now=now,
                scale=self.scale,
                kecamatan_slug=wilayah.kecamatan_slug(snapshot.case.location.kecamatan.code),
                sending=self.sending,
            )

        decision = await self.store.apply_case_event(case_id, judge, via=via)
        if decision is None:
            raise CaseNotFound(case_id)
        self.on_committed()
        after = await self.store.case_snapshot(case_id)
        if after is None:
            raise CaseNotFound(case_id)
        return after

    async def view(self, case_id: str, *, full: bool, reader: audit.Actor) -> CaseView:
        snapshot = await self.store.case_snapshot(case_id)
        if snapshot is None:
            raise CaseNotFound(case_id)
        return await self.view_of(snapshot, full=full, reader=reader)

    async def view_of(self, snapshot: CaseSnapshot, *, full: bool, reader: audit.Actor) -> CaseView:
        """The case with its delivery record (the delivery log and 112's receipts). A
        ``full`` view shows personal data: the audit log records ``reader`` first."""
        case_id = snapshot.case.case_id
        if full:
            await self.store.append_audit(
                audit.AuditEntry(
                    at=self.clock(),
                    actor=reader,
                    action=audit.CASE_READ,
                    case_id=case_id,
                )
            )
        log = await self.store.delivery_log(case_id=case_id, limit=DELIVERY_LOG_LIMIT)
        receipts = await self.store.receipts(case_id=case_id)
        return case_views.case_view(
            snapshot,
            now=self.clock(),
            scale=self.scale,
            full=full,
            delivery=case_views.delivery_views(snapshot, reversed(log), receipts),
        )

    async def sla_report(self, start: datetime, end: datetime) -> SlaReport:
        snapshots = await self.store.case_snapshots(received_between=(start, end))
        return case_views.sla_report(
            snapshots, start=start, end=end, now=self.clock(), scale=self.scale
        )

    async def simfoni_export(self, start: datetime, end: datetime) -> SimfoniExport:
        snapshots = await self.store.case_snapshots(ended_between=(start, end))
        return SimfoniExport(
            from_=start, to=end, rows=case_views.simfoni_rows(snapshots, scale=self.scale)
        )
