"""What the SOP workflow sends: the case to 112 when other agencies become needed,
``status-report/1`` messages to 112, and ``sla-event/1`` events on the topic exchange.

Pure: ids, times and the case's 112 stream (last sequence, earlier ids) come in.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.case import CASE_SCHEMA, Case
from contracts.envelope import DistributionKind, DistributionStatus, Envelope, RecipientRole
from contracts.status_report import (
    SLA_EVENT_SCHEMA,
    STATUS_REPORT_SCHEMA,
    PreparedBy,
    SlaEvent,
    StatusReport,
)
from contracts.workflow import CaseEventRequest, StaffRole
from gateway import escalation, workflow
from gateway.model import Destination, OutboundMessage, Timer
from gateway.redaction import redact_case
from gateway.routing import C112_RECIPIENT, c112_deadline, outbound, routing_key
from gateway.workflow import CaseSnapshot, HistoryEntry, Workflow

# By alias: the pydantic mypy plugin cannot see the alias of ``Envelope.schema_``.
_CASE: dict[str, Any] = {"schema": CASE_SCHEMA}
_STATUS: dict[str, Any] = {"schema": STATUS_REPORT_SCHEMA}
_SLA: dict[str, Any] = {"schema": SLA_EVENT_SCHEMA}

PREPARED_BY: Mapping[StaffRole, str] = {
    StaffRole.SATGAS: "satgas-ppa",
    StaffRole.HEAD: "kepala-uptd-ppa",
}


@dataclass(frozen=True, slots=True)
class Sending:
    """Who the gateway is when it sends: from the settings."""

    sender_id: str
    status: DistributionStatus
    new_id: Callable[[], str]


@dataclass(frozen=True, slots=True)
class CaseDecision:
    """Everything one event makes the store write, in one transaction."""

    workflow: Workflow
    case: Case | None
    entry: HistoryEntry
    cancel_subjects: tuple[str, ...]
    timers: tuple[Timer, ...]
    outgoing: tuple[OutboundMessage, ...]


def decide(
    snapshot: CaseSnapshot,
    event: CaseEventRequest,
    *,
    role: StaffRole,
    now: datetime,
    scale: float,
    kecamatan_slug: str,
    sending: Sending,
) -> CaseDecision:
    """The workflow's transition plus the timers and messages it brings."""
    moved = workflow.transition(snapshot, event, role=role, now=now, scale=scale)
    case = moved.case or snapshot.case
    timers = workflow.sla_timers(
        case,
        moved.workflow,
        moved.timer_steps,
        now=now,
        kecamatan_slug=kecamatan_slug,
        new_id=sending.new_id,
        fired=snapshot.sla_marks,
    )
    stream = snapshot.c112
    sequence, references = stream.last_sequence, list(stream.distribution_ids)
    outgoing: list[OutboundMessage] = []
    if moved.routes_to_112:
        sequence += 1
        message = c112_case_push(
            case,
            now=now,
            sending=sending,
            sequence=sequence,
            references=references,
            scale=scale,
        )
        outgoing.append(message)
        references.append(message.message_id)
    if moved.report is not None and event.report is not None:
        sequence += 1
        report = StatusReport(
            **event.report.model_dump(),
            report_number=moved.workflow.status_reports,
            version=_version(moved.report, moved.workflow.status_reports),
            type=moved.report,
            case_state=moved.workflow.state.value,
            prepared_by=PreparedBy(role=PREPARED_BY[role]),
        )
        outgoing.append(
            status_report_message(
                case.case_id,
                report,
                now=now,
                sending=sending,
                sequence=sequence,
                references=references,
                scale=scale,
            )
        )
        key = routing_key("status", report.type, kecamatan_slug, case.risk.level.value)
        outgoing.append(
            status_event_message(
                case.case_id, report, key, now=now, sending=sending, sequence=sequence
            )
        )
    ended = moved.workflow.state in workflow.TERMINAL
    cancel = (
        tuple(workflow.timer_subject(case.case_id, s) for s in workflow.STANDARDS)
        if ended
        else tuple(workflow.timer_subject(case.case_id, s) for s in moved.cancel_steps)
    )
    return CaseDecision(
        workflow=moved.workflow,
        case=moved.case,
        entry=moved.entry,
        cancel_subjects=cancel,
        timers=(() if ended else timers)
        + escalation.timers_for(
            outgoing, sent_at=now, kecamatan_slug=kecamatan_slug, risk=case.risk.level.value
        ),
        outgoing=tuple(outgoing),
    )


def _version(kind: str, number: int) -> str:
    if kind == "handling":
        return "final"
    return "initial" if number == 1 else "update"


def c112_case_push(
    case: Case,
    *,
    now: datetime,
    sending: Sending,
    sequence: int,
    references: list[str],
    scale: float = 1.0,
) -> OutboundMessage:
    """The case handed to 112 once other agencies are needed, due in 5 minutes (SOP 6)."""
    return _to_112(
        case.case_id,
        _CASE,
        DistributionKind.UPDATE if references else DistributionKind.REPORT,
        ["kdrt", "needs-other-agency", f"risk:{case.risk.level.value}"],
        redact_case(case, RecipientRole.C112),
        now=now,
        sending=sending,
        sequence=sequence,
        references=references,
        scale=scale,
    )


def status_report_message(
    case_id: str,
    report: StatusReport,
    *,
    now: datetime,
    sending: Sending,
    sequence: int,
    references: list[str],
    scale: float = 1.0,
) -> OutboundMessage:
    return _to_112(
        case_id,
        _STATUS,
        DistributionKind.UPDATE,
        ["kdrt", report.type],
        report.model_dump(mode="json", exclude_none=True),
        now=now,
        sending=sending,
        sequence=sequence,
        references=references,
        scale=scale,
    )


def _to_112(
    case_id: str,
    schema: dict[str, Any],
    kind: DistributionKind,
    keywords: list[str],
    content: dict[str, Any],
    *,
    now: datetime,
    sending: Sending,
    sequence: int,
    references: list[str],
    scale: float,
) -> OutboundMessage:
    """A message to 112 in the case's stream, due within the SOP 6 standard."""
    envelope = Envelope(
        distribution_id=sending.new_id(),
        sender_id=sending.sender_id,
        sent_at=now,
        deadline_at=now + c112_deadline(scale),
        status=sending.status,
        kind=kind,
        **schema,
        case_id=case_id,
        sequence=sequence,
        references=list(references),
        recipient_roles=[RecipientRole.C112],
        keywords=keywords,
        redaction_profile=RecipientRole.C112,
        content=content,
    )
    return outbound(Destination.DELIVER, C112_RECIPIENT, envelope)


def status_event_message(
    case_id: str,
    report: StatusReport,
    key: str,
    *,
    now: datetime,
    sending: Sending,
    sequence: int,
) -> OutboundMessage:
    """The same report on the topic exchange, for partners subscribed to ``status.#``.

    A status report is coded S0/S1 data only, so every role may see it whole.
    """
    envelope = Envelope(
        distribution_id=sending.new_id(),
        sender_id=sending.sender_id,
        sent_at=now,
        status=sending.status,
        kind=DistributionKind.UPDATE,
        **_STATUS,
        case_id=case_id,
        sequence=sequence,
        keywords=["kdrt", report.type],
        routing_key=key,
        redaction_profile=RecipientRole.DASHBOARD,
        content=report.model_dump(mode="json", exclude_none=True),
    )
    return outbound(Destination.EVENTS, key, envelope)


def sla_event_messages(timer: Timer, *, now: datetime, sending: Sending) -> tuple[OutboundMessage]:
    """The one ``sla.warning`` / ``sla.breached`` event a fired SLA timer publishes."""
    event = timer.kind.removeprefix("sla.")
    step = int(timer.data["step"])
    kecamatan = timer.data.get("kecamatan") or None
    risk = timer.data.get("risk") or None
    key = routing_key("sla", event, kecamatan, risk)
    content = SlaEvent(
        case_id=timer.case_id,
        event=event,
        step=step,
        activity=workflow.STANDARDS[step].activity,
        entered_at=datetime.fromisoformat(timer.data["entered_at"]),
        due_at=datetime.fromisoformat(timer.data["due_at"]),
        kecamatan=kecamatan,
        risk_level=risk,
    )
    envelope = Envelope(
        distribution_id=sending.new_id(),
        sender_id=sending.sender_id,
        sent_at=now,
        status=sending.status,
        kind=DistributionKind.UPDATE,
        **_SLA,
        case_id=timer.case_id,
        # the topic stream of a case: case.created is 1, then two per step in step order
        sequence=2 * step + (0 if event == "warning" else 1),
        routing_key=key,
        keywords=["kdrt", "sla", event],
        redaction_profile=RecipientRole.DASHBOARD,
        content=content.model_dump(mode="json", exclude_none=True),
    )
    return (outbound(Destination.EVENTS, key, envelope),)
