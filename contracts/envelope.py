"""The distribution envelope: an EDXL-DE 2.0 subset in JSON.

Every message the gateway sends (to 112, partners, dashboards) is one envelope;
``distribution_id`` is also the Standard Webhooks ``webhook-id``.
"""

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.sensitivity import SENSITIVITY_KEY, Sensitivity, classified

S0, S1 = Sensitivity.S0, Sensitivity.S1

SENDER_ID = "id.go.tangerangkota.dp3ap2kb.uptd-ppa"


class DistributionStatus(StrEnum):
    ACTUAL = "actual"
    EXERCISE = "exercise"
    TEST = "test"


class DistributionKind(StrEnum):
    REPORT = "report"
    UPDATE = "update"
    CANCEL = "cancel"
    ACK = "ack"
    ERROR = "error"


class RecipientRole(StrEnum):
    C112 = "c112"
    POLICE = "police"
    HEALTH = "health"
    SOCIAL = "social"
    SHELTER = "shelter"
    DASHBOARD = "dashboard"


class Envelope(BaseModel):
    """What a recipient receives; ``content`` is already redacted for its role."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    distribution_id: str = classified(S0, description="UUID; also the webhook-id.")
    sender_id: str = classified(S0, SENDER_ID)
    sent_at: AwareDatetime = classified(S0)
    expires_at: AwareDatetime | None = classified(S0, None)
    deadline_at: AwareDatetime | None = classified(
        S0, None, description="When this message must have been delivered."
    )
    status: DistributionStatus = classified(S0, DistributionStatus.ACTUAL)
    kind: DistributionKind = classified(S0)
    schema_: str = Field(
        alias="schema",
        examples=["kdrt-case/1", "status-report/1"],
        json_schema_extra={SENSITIVITY_KEY: S0.value},
    )
    case_id: str = classified(S0)
    sequence: int = classified(S0, ge=1, description="Per case, monotonic.")
    references: list[str] = classified(S0, default_factory=list)
    recipient_roles: list[RecipientRole] = classified(S0, default_factory=list)
    keywords: list[str] = classified(S1, default_factory=list)
    confidentiality: str = classified(S0, "victim-confidential")
    routing_key: str | None = classified(S0, None)
    redaction_profile: RecipientRole = classified(S0)
    content: dict[str, Any] = Field(
        description="The case or status report, redacted for redaction_profile."
    )
