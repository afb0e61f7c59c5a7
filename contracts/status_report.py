"""``status-report/1``: what UPTD PPA tells 112 about the handling of a case (SOP 6 and 8),
and ``sla-event/1``: a step of SOP 357 nearing or past its time standard."""

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from contracts.case import Agency
from contracts.sensitivity import Sensitivity, classified

S0, S1 = Sensitivity.S0, Sensitivity.S1

STATUS_REPORT_SCHEMA = "status-report/1"
SLA_EVENT_SCHEMA = "sla-event/1"

_CODE = r"^[a-z][a-z0-9_]{0,63}$"


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VictimStatus(StrEnum):
    SAFE = "safe"
    AT_RISK = "at_risk"
    INJURED = "injured"
    HOSPITALISED = "hospitalised"
    SHELTERED = "sheltered"
    UNKNOWN = "unknown"


class Service(StrEnum):
    """The services SIMFONI-PPA records (its own Indonesian terms)."""

    PENGADUAN = "pengaduan"
    PENJANGKAUAN = "penjangkauan"
    KESEHATAN = "kesehatan"
    BANTUAN_HUKUM = "bantuan_hukum"
    PENEGAKAN_HUKUM = "penegakan_hukum"
    REHABILITASI_SOSIAL = "rehabilitasi_sosial"
    REINTEGRASI_SOSIAL = "reintegrasi_sosial"
    PEMULANGAN = "pemulangan"
    PENDAMPINGAN_TOKOH_AGAMA = "pendampingan_tokoh_agama"
    PENAMPUNGAN_SEMENTARA = "penampungan_sementara"
    MEDIASI = "mediasi"
    PENDAMPINGAN_PSIKOLOGIS = "pendampingan_psikologis"


class AgencyRole(StrEnum):
    LEAD = "lead"
    SUPPORTING = "supporting"


class AgencyProgress(StrEnum):
    REQUESTED = "requested"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    DONE = "done"
    DECLINED = "declined"


class ReportAction(Contract):
    at: AwareDatetime = classified(S0)
    actor_role: str = classified(S0, pattern=r"^[a-z][a-z0-9-]{0,31}$", examples=["satgas-ppa"])
    action: str = classified(S1, pattern=_CODE, examples=["team_on_scene"])


class AgencyStatus(Contract):
    agency: Agency = classified(S1)
    role: AgencyRole = classified(S1)
    status: AgencyProgress = classified(S1)


class StatusReportInput(Contract):
    """What staff report (SOP 6 status, SOP 8 handling): coded, never free text."""

    actions: list[ReportAction] = classified(S1, default_factory=list, max_length=50)
    agencies: list[AgencyStatus] = classified(S1, default_factory=list, max_length=8)
    victim_status: VictimStatus = classified(S1)
    services: list[Service] = classified(S1, default_factory=list, max_length=12)
    next_contact_at: AwareDatetime | None = classified(S0, None)


class PreparedBy(Contract):
    role: str = classified(S0, examples=["satgas-ppa", "kepala-uptd-ppa"])


class StatusReport(StatusReportInput):
    """The ``content`` of a ``status-report/1`` envelope."""

    report_number: int = classified(S0, ge=1)
    version: str = classified(S0, pattern="^(initial|update|final)$")
    type: str = classified(S0, pattern="^(status|handling)$")
    case_state: str = classified(S0)
    prepared_by: PreparedBy = classified(S0)


class SlaEvent(Contract):
    """The ``content`` of an ``sla-event/1`` envelope: S0/S1 only."""

    case_id: str = classified(S0)
    event: str = classified(S0, pattern="^(warning|breached)$")
    step: int = classified(S0, ge=1, le=8)
    activity: str = classified(S0)
    entered_at: AwareDatetime = classified(S0)
    due_at: AwareDatetime = classified(S0)
    kecamatan: str | None = classified(S1, None)
    risk_level: str | None = classified(S1, None)
