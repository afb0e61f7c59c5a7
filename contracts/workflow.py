"""The SOP 357 case workflow as the API speaks it: states, events, step views and reports."""

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.case import Agency
from contracts.receipt import ReceiptStatus
from contracts.sensitivity import Sensitivity, classified
from contracts.status_report import StatusReportInput

S0, S1, S2 = Sensitivity.S0, Sensitivity.S1, Sensitivity.S2

CASE_ID_PATTERN = r"^urn:tangerangkota:kdrt:[0-9A-HJKMNP-TV-Z]{26}$"


class CaseState(StrEnum):
    RECEIVED = "received"  # SOP 1
    REPORTED_TO_HEAD = "reported_to_head"  # SOP 2 pending: Satgas reports to the head
    AWAITING_ASSIGNMENT = "awaiting_assignment"  # SOP 3
    TEAM_MOBILISING = "team_mobilising"  # SOP 4
    FOLLOW_UP = "follow_up"  # SOP 5
    MULTI_AGENCY_COORDINATION = "multi_agency_coordination"  # SOP 6
    REPORTING_TO_HEAD = "reporting_to_head"  # SOP 7
    HANDLING_REPORT_TO_112 = "handling_report_to_112"  # SOP 8
    CLOSED = "closed"
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"


class EventType(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    REPORTED_TO_HEAD = "reported_to_head"
    TEAM_ASSIGNED = "team_assigned"
    TEAM_DEPARTED = "team_departed"
    NEEDS_OTHER_AGENCIES = "needs_other_agencies"
    FOLLOW_UP_DOCUMENTED = "follow_up_documented"
    STATUS_REPORT = "status_report"
    REPORTED_TO_HEAD_FINAL = "reported_to_head_final"
    HANDLING_REPORT = "handling_report"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    DUPLICATE_OF = "duplicate_of"


class StepStatus(StrEnum):
    PENDING = "pending"
    WARNING = "warning"
    BREACHED = "breached"
    MET = "met"
    SKIPPED = "skipped"


class StaffRole(StrEnum):
    SATGAS = "satgas"
    HEAD = "head"


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventActor(Contract):
    role: StaffRole = classified(S0)
    id: str | None = classified(S1, None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")


class CaseEventRequest(Contract):
    """One step of SOP 357, as UPTD PPA staff report it. Which fields a type needs:
    ``team_assigned``: ``team_id``; ``needs_other_agencies``: ``agencies``;
    ``follow_up_documented``: ``documentation``; ``status_report`` and
    ``handling_report``: ``report``; ``duplicate_of``: ``duplicate_of``."""

    type: EventType = classified(S0)
    at: AwareDatetime | None = classified(
        S0, None, description="When it happened (default: now); never in the future."
    )
    by: EventActor = classified(S1)
    team_id: str | None = classified(S1, None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    agencies: list[Agency] = classified(S1, default_factory=list, max_length=8)
    reason: str | None = classified(S1, None, max_length=300)
    uptd_ppa_coordinates: bool = classified(
        S0,
        True,
        description="needs_other_agencies: UPTD PPA is the coordinating agency (SOP 8 applies).",
    )
    documentation: list[str] = classified(
        S2,
        default_factory=list,
        max_length=50,
        description="References to the follow-up documentation (file ids, URLs).",
    )
    report: StatusReportInput | None = classified(S1, None)
    duplicate_of: str | None = classified(S0, None, pattern=CASE_ID_PATTERN)


class StepView(Contract):
    step: int = classified(S0, ge=1, le=8)
    activity: str = classified(S0)
    state: CaseState = classified(S0)
    standard_s: float = classified(S0, description="The SOP's time standard.")
    window_s: float = classified(S0, description="The standard divided by GATEWAY_SLA_SCALE.")
    entered_at: AwareDatetime = classified(S0)
    due_at: AwareDatetime = classified(S0)
    done_at: AwareDatetime | None = classified(S0, None)
    skipped_at: AwareDatetime | None = classified(S0, None)
    elapsed_s: float | None = classified(S0, None)
    status: StepStatus = classified(S0)
    warned_at: AwareDatetime | None = classified(S0, None)
    breached_at: AwareDatetime | None = classified(S0, None)


class HistoryItem(Contract):
    type: EventType = classified(S0)
    at: AwareDatetime = classified(S0)
    recorded_at: AwareDatetime = classified(S0)
    by_role: StaffRole = classified(S0)
    by_id: str | None = classified(S1, None)
    details: dict[str, Any] | None = classified(
        S2, None, description="The event's content; only for satgas and head."
    )


class FunctionalReceipt(Contract):
    """112's latest receipt for a message: what it did with it, apart from delivery."""

    status: ReceiptStatus = classified(S0)
    at: AwareDatetime = classified(S0, description="When 112 says it happened.")
    received_at: AwareDatetime = classified(S0, description="When the gateway got the receipt.")
    ticket: str | None = classified(S0, None, description="112's own ticket number.")


class DeliveryView(Contract):
    """One message of the case to one recipient, from the delivery log; a failover copy
    is shown with the message it copies."""

    distribution_id: str = classified(S0)
    recipient: str = classified(S0, examples=["c112"])
    delivered: bool = classified(S0, description="The recipient answered 2xx (technical).")
    delivered_at: AwareDatetime | None = classified(S0, None)
    attempts: int = classified(S0, description="Pushes made so far.")
    last_outcome: str | None = classified(
        S0, None, examples=["delivered", "retry", "parked", "gone"], description="Of the last push."
    )
    last_at: AwareDatetime | None = classified(S0, None)
    last_status_code: int | None = classified(S0, None)
    at_risk_at: AwareDatetime | None = classified(
        S0, None, description="When 80 % of its deadline passed undelivered."
    )
    deadline_missed_at: AwareDatetime | None = classified(S0, None)
    failover_started_at: AwareDatetime | None = classified(
        S0, None, description="When a copy went to the failover endpoint."
    )
    failover_delivered_at: AwareDatetime | None = classified(S0, None)
    receipt: FunctionalReceipt | None = classified(
        S0, None, description="112's functional receipt (received / accepted / rejected)."
    )


class CaseView(Contract):
    case_id: str = classified(S0)
    state: CaseState = classified(S0)
    received_at: AwareDatetime = classified(S0)
    sla_scale: float = classified(S0)
    coordination: bool = classified(S1, description="On the SOP 6 (other agencies) path.")
    duplicate_of: str | None = classified(S0, None)
    allowed_events: list[EventType] = classified(S0)
    steps: list[StepView] = classified(S0)
    history: list[HistoryItem] = classified(S1)
    case: dict[str, Any] = classified(
        S1, description="The case; S2/S3 fields only for satgas and head."
    )
    delivery: list[DeliveryView] = classified(
        S0,
        default_factory=list,
        description="Each message of the case to a recipient (112 first, in sequence).",
    )


class StepCompliance(Contract):
    step: int = classified(S0)
    activity: str = classified(S0)
    standard_s: float = classified(S0)
    count: int = classified(S0, description="Steps done, or open past their deadline.")
    met: int = classified(S0)
    breached: int = classified(S0)
    breach_rate: float | None = classified(S0, None)
    median_s: float | None = classified(S0, None, description="Of the steps done.")
    p90_s: float | None = classified(S0, None, description="Nearest rank, of the steps done.")


class PathCompliance(Contract):
    path: str = classified(S0, examples=["step5", "step6"])
    steps: list[int] = classified(S0)
    standard_s: float = classified(S0, description="The sum of the path's standards.")
    sop_total_s: float = classified(S0, description="The SOP's total, 4 h 41 min.")
    count: int = classified(S0, description="Cases that finished the path.")
    within_standard: int = classified(S0)
    within_sop_total: int = classified(S0)
    median_s: float | None = classified(S0, None)
    p90_s: float | None = classified(S0, None)


class SlaReport(Contract):
    from_: AwareDatetime = Field(alias="from", serialization_alias="from")
    to: AwareDatetime
    generated_at: AwareDatetime
    sla_scale: float
    cases: int
    steps: list[StepCompliance]
    paths: list[PathCompliance]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SimfoniRow(Contract):
    """One victim of one closed case, in SIMFONI-PPA's categories."""

    case_id: str = classified(S0)
    received_on: str = classified(S1, description="WIB date.")
    closed_on: str = classified(S1, description="WIB date.")
    kecamatan: str = classified(S1)
    violence_forms: list[str] = classified(S1)
    place: str | None = classified(S1, None)
    victim_sex: str | None = classified(S1, None)
    victim_age_band: str | None = classified(S1, None)
    victim_is_child: bool | None = classified(S1, None)
    perpetrator_relationships: list[str] = classified(S1)
    services: list[str] = classified(S1)


class SimfoniExport(Contract):
    from_: AwareDatetime = Field(alias="from", serialization_alias="from")
    to: AwareDatetime
    rows: list[SimfoniRow]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
