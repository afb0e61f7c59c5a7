"""What the unit sees of its cases: one case against SOP 357, the compliance report,
and the SIMFONI-PPA export of closed cases. Pure: snapshots and times in, contracts out.
"""

import csv
import io
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from contracts.receipt import ReceiptStatus
from contracts.sensitivity import Sensitivity
from contracts.workflow import (
    CaseState,
    CaseView,
    DeliveryView,
    EventType,
    FunctionalReceipt,
    HistoryItem,
    PathCompliance,
    SimfoniExport,
    SimfoniRow,
    SlaReport,
    StepCompliance,
    StepView,
)
from gateway import workflow
from gateway.escalation import FAILOVER_SUFFIX, failover_id
from gateway.model import AttemptOutcome, DeliveryAttempt, ReceiptRecord
from gateway.redaction import FIELD_SENSITIVITY, redact_paths, sensitivity_of
from gateway.routing import C112_RECIPIENT
from gateway.times import WIB
from gateway.workflow import (
    PATHS,
    SLA_BREACHED,
    SLA_WARNING,
    SOP_TOTAL,
    STANDARDS,
    CaseSnapshot,
    StepRecord,
    Workflow,
)

OPS_CASE_PATHS = frozenset(
    path for path in FIELD_SENSITIVITY if sensitivity_of(path) in (Sensitivity.S0, Sensitivity.S1)
)
"""The fields of a case the ops role may see: those with nothing above S1 beneath them."""

REPORT_EVENTS = (EventType.STATUS_REPORT, EventType.HANDLING_REPORT)


def flow_of(snapshot: CaseSnapshot, scale: float) -> Workflow:
    return snapshot.workflow or workflow.start(snapshot.case, scale)


def _elapsed(record: StepRecord, now: datetime) -> float | None:
    end = record.done_at or record.skipped_at or now
    if end < record.entered_at:
        return None
    return (end - record.entered_at).total_seconds()


def case_view(
    snapshot: CaseSnapshot,
    *,
    now: datetime,
    scale: float,
    full: bool,
    delivery: Sequence[DeliveryView] = (),
) -> CaseView:
    """The case, its history, each step opened so far and ``delivery`` (see
    ``delivery_views``); S2/S3 fields only when ``full``."""
    flow = flow_of(snapshot, scale)
    steps = [
        StepView(
            step=record.step,
            activity=STANDARDS[record.step].activity,
            state=STANDARDS[record.step].state,
            standard_s=STANDARDS[record.step].duration.total_seconds(),
            window_s=(record.due_at - record.entered_at).total_seconds(),
            entered_at=record.entered_at,
            due_at=record.due_at,
            done_at=record.done_at,
            skipped_at=record.skipped_at,
            elapsed_s=_elapsed(record, now),
            status=workflow.step_status(record, now),
            warned_at=snapshot.sla_marks.get((record.step, SLA_WARNING)),
            breached_at=snapshot.sla_marks.get((record.step, SLA_BREACHED)),
        )
        for record in flow.steps
        if record.entered_at <= now or not record.open
    ]
    history = [
        HistoryItem(
            type=entry.type,
            at=entry.at,
            recorded_at=entry.recorded_at,
            by_role=entry.by_role,
            by_id=entry.by_id,
            details=dict(entry.details) if full else None,
        )
        for entry in snapshot.history
    ]
    case = snapshot.case
    content = (
        case.model_dump(mode="json", exclude={"case_id"}, exclude_none=True)
        if full
        else redact_paths(case, OPS_CASE_PATHS)
    )
    return CaseView(
        case_id=case.case_id,
        state=flow.state,
        received_at=case.received_at,
        sla_scale=flow.scale,
        coordination=flow.coordination,
        duplicate_of=flow.duplicate_of,
        allowed_events=workflow.allowed_events(flow),
        steps=steps,
        history=history,
        case=content,
        delivery=list(delivery),
    )


@dataclass(slots=True)
class _Delivery:
    distribution_id: str
    recipient: str
    attempts: int = 0
    last: DeliveryAttempt | None = None
    delivered_at: datetime | None = None
    at_risk_at: datetime | None = None
    deadline_missed_at: datetime | None = None
    failover_started_at: datetime | None = None
    failover_delivered_at: datetime | None = None
    receipt: ReceiptRecord | None = None

    def view(self) -> DeliveryView:
        last, receipt = self.last, self.receipt
        return DeliveryView(
            distribution_id=self.distribution_id,
            recipient=self.recipient,
            delivered=self.delivered_at is not None,
            delivered_at=self.delivered_at,
            attempts=self.attempts,
            last_outcome=None if last is None else last.outcome.value,
            last_at=None if last is None else last.at,
            last_status_code=None if last is None else last.status_code,
            at_risk_at=self.at_risk_at,
            deadline_missed_at=self.deadline_missed_at,
            failover_started_at=self.failover_started_at,
            failover_delivered_at=self.failover_delivered_at,
            receipt=None
            if receipt is None
            else FunctionalReceipt(
                status=ReceiptStatus(receipt.status),
                at=receipt.at,
                received_at=receipt.received_at,
                ticket=receipt.ticket,
            ),
        )


def delivery_views(
    snapshot: CaseSnapshot,
    log: Iterable[DeliveryAttempt],
    receipts: Iterable[ReceiptRecord],
) -> list[DeliveryView]:
    """Per message and recipient, from the delivery log (oldest first): delivered or not,
    the last push, when it went at risk, missed its deadline or failed over, and 112's
    latest receipt (receipts oldest first). The case's messages to 112 come first, in
    sequence, listed before their first push."""
    rows = list(log)
    found: dict[tuple[str, str], _Delivery] = {}

    def entry(distribution_id: str, recipient: str) -> _Delivery:
        key = (distribution_id, recipient)
        if key not in found:
            found[key] = _Delivery(distribution_id, recipient)
        return found[key]

    for distribution_id in snapshot.c112.distribution_ids:
        entry(distribution_id, C112_RECIPIENT)
    known = {*snapshot.c112.distribution_ids, *(row.distribution_id for row in rows)}
    copies = {failover_id(distribution_id): distribution_id for distribution_id in known}
    for row in rows:
        primary = row.recipient.removesuffix(FAILOVER_SUFFIX)
        copied = copies.get(row.distribution_id)
        if copied is not None:
            if row.outcome is AttemptOutcome.DELIVERED:
                copy_of = entry(copied, primary)
                copy_of.failover_delivered_at = copy_of.failover_delivered_at or row.at
            continue
        if row.outcome is AttemptOutcome.FAILOVER_STARTED:
            started = entry(row.distribution_id, primary)
            started.failover_started_at = started.failover_started_at or row.at
            continue
        current = entry(row.distribution_id, row.recipient)
        if row.outcome is AttemptOutcome.AT_RISK:
            current.at_risk_at = current.at_risk_at or row.at
        elif row.outcome is AttemptOutcome.DEADLINE_MISSED:
            current.deadline_missed_at = current.deadline_missed_at or row.at
        else:
            current.attempts += 1
            current.last = row
            if row.outcome is AttemptOutcome.DELIVERED:
                current.delivered_at = current.delivered_at or row.at
    for receipt in receipts:
        entry(receipt.distribution_id, C112_RECIPIENT).receipt = receipt
    return [item.view() for item in found.values()]


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def p90(values: Sequence[float]) -> float | None:
    """Nearest rank: the smallest value with at least 90 % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def _judged(record: StepRecord, now: datetime) -> bool | None:
    """True for a breach, False for a step met, None while it cannot be judged yet."""
    if record.done_at is not None:
        return record.done_at > record.due_at
    end = record.skipped_at or now
    return True if end >= record.due_at else None


def _final_step(flow: Workflow) -> int:
    return 8 if workflow.step8_applies(flow) else 7


def sla_report(
    snapshots: Iterable[CaseSnapshot],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    scale: float,
) -> SlaReport:
    """Per step: count, median, p90 and breach rate against the SOP; per path: totals
    from receipt to the path's last step, against the path's standard and the SOP total."""
    flows = [flow_of(s, scale) for s in snapshots]
    steps = []
    for number, standard in STANDARDS.items():
        records = [r for f in flows if (r := f.step(number)) is not None]
        verdicts = [v for r in records if (v := _judged(r, now)) is not None]
        elapsed = [
            (r.done_at - r.entered_at).total_seconds() for r in records if r.done_at is not None
        ]
        breached = sum(verdicts)
        steps.append(
            StepCompliance(
                step=number,
                activity=standard.activity,
                standard_s=standard.duration.total_seconds(),
                count=len(verdicts),
                met=len(verdicts) - breached,
                breached=breached,
                breach_rate=breached / len(verdicts) if verdicts else None,
                median_s=median(elapsed),
                p90_s=p90(elapsed),
            )
        )
    paths = []
    for name, numbers in PATHS.items():
        coordination = 6 in numbers
        totals = []
        for flow in flows:
            if flow.coordination is not coordination:
                continue
            final = flow.step(_final_step(flow))
            if final is None or final.done_at is None:
                continue
            totals.append((final.done_at - flow.received_at).total_seconds())
        standard_s = sum(STANDARDS[n].duration.total_seconds() for n in numbers)
        sop_total_s = SOP_TOTAL.total_seconds()
        paths.append(
            PathCompliance(
                path=name,
                steps=list(numbers),
                standard_s=standard_s,
                sop_total_s=sop_total_s,
                count=len(totals),
                within_standard=sum(t <= standard_s / scale for t in totals),
                within_sop_total=sum(t <= sop_total_s / scale for t in totals),
                median_s=median(totals),
                p90_s=p90(totals),
            )
        )
    return SlaReport(
        from_=start,
        to=end,
        generated_at=now,
        sla_scale=scale,
        cases=len(flows),
        steps=steps,
        paths=paths,
    )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


SLA_CSV_HEADER = (
    "kind",
    "id",
    "activity",
    "standard_s",
    "count",
    "met",
    "breached",
    "breach_rate",
    "median_s",
    "p90_s",
    "within_sop_total",
)


def sla_report_csv(report: SlaReport) -> str:
    """One row per step, then one per path (``met`` = within the path's standard)."""
    rows: list[Sequence[object]] = [
        (
            "step",
            s.step,
            s.activity,
            s.standard_s,
            s.count,
            s.met,
            s.breached,
            s.breach_rate,
            s.median_s,
            s.p90_s,
            None,
        )
        for s in report.steps
    ]
    rows.extend(
        (
            "path",
            p.path,
            "steps " + "-".join(str(n) for n in p.steps),
            p.standard_s,
            p.count,
            p.within_standard,
            p.count - p.within_standard,
            (p.count - p.within_standard) / p.count if p.count else None,
            p.median_s,
            p.p90_s,
            p.within_sop_total,
        )
        for p in report.paths
    )
    return _csv(SLA_CSV_HEADER, rows)


def _services(snapshot: CaseSnapshot) -> list[str]:
    found: dict[str, None] = {}
    for entry in snapshot.history:
        if entry.type in REPORT_EVENTS:
            report = entry.details.get("report") or {}
            for service in report.get("services", []):
                found[str(service)] = None
    return list(found)


def simfoni_rows(snapshots: Iterable[CaseSnapshot], *, scale: float) -> list[SimfoniRow]:
    """One row per victim of each closed case, in SIMFONI-PPA's categories."""
    rows = []
    for snapshot in snapshots:
        flow = flow_of(snapshot, scale)
        if flow.state is not CaseState.CLOSED or flow.ended_at is None:
            continue
        case = snapshot.case
        relationships = [p.relationship.value for p in case.perpetrators if p.relationship]
        services = _services(snapshot)
        for victim in case.victims:
            rows.append(
                SimfoniRow(
                    case_id=case.case_id,
                    received_on=case.received_at.astimezone(WIB).date().isoformat(),
                    closed_on=flow.ended_at.astimezone(WIB).date().isoformat(),
                    kecamatan=case.location.kecamatan.name,
                    violence_forms=[f.value for f in case.violence_forms],
                    place=case.place_category.value if case.place_category else None,
                    victim_sex=victim.sex.value if victim.sex else None,
                    victim_age_band=victim.age_band,
                    victim_is_child=victim.is_child,
                    perpetrator_relationships=relationships,
                    services=services,
                )
            )
    return rows


def simfoni_csv(export: SimfoniExport) -> str:
    header = tuple(SimfoniRow.model_fields)
    return _csv(header, ([getattr(row, name) for name in header] for row in export.rows))
