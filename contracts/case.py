"""The canonical case contract ``kdrt-case/1``.

Field names are English; the Si Lacak Perak adapter maps its Indonesian vocabulary
onto these. Times are UTC, phone numbers E.164, places carry Kemendagri codes.
"""

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.sensitivity import Sensitivity, classified

S0, S1, S2, S3 = Sensitivity.S0, Sensitivity.S1, Sensitivity.S2, Sensitivity.S3

CASE_SCHEMA = "kdrt-case/1"


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(StrEnum):
    APP = "app"
    HOTLINE = "hotline"
    WHATSAPP = "whatsapp"
    PATBM_CADRE = "patbm_cadre"


class ViolenceForm(StrEnum):
    """UU 23/2004 art. 5, plus the further forms SIMFONI-PPA records."""

    PHYSICAL = "physical"
    PSYCHOLOGICAL = "psychological"
    SEXUAL = "sexual"
    HOUSEHOLD_NEGLECT = "household_neglect"
    EXPLOITATION = "exploitation"
    TRAFFICKING = "trafficking"
    OTHER = "other"


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Agency(StrEnum):
    POLICE = "police"
    HEALTH = "health"
    SOCIAL = "social"
    FIRE = "fire"


class PlaceCategory(StrEnum):
    HOUSEHOLD = "household"
    WORKPLACE = "workplace"
    SCHOOL = "school"
    PUBLIC_FACILITY = "public_facility"
    OTHER = "other"


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"


class ReporterRole(StrEnum):
    SELF = "self"
    FAMILY = "family"
    NEIGHBOUR = "neighbour"
    PATBM_CADRE = "patbm_cadre"
    OTHER = "other"


class Relationship(StrEnum):
    HUSBAND = "husband"
    WIFE = "wife"
    FATHER = "father"
    MOTHER = "mother"
    STEPFATHER = "stepfather"
    STEPMOTHER = "stepmother"
    CHILD = "child"
    SIBLING = "sibling"
    PARENT_IN_LAW = "parent_in_law"
    PARTNER = "partner"
    OTHER = "other"


class Source(Contract):
    system: str = classified(S0, examples=["si-lacak-perak"])
    channel: Channel = classified(S1)
    reference: str = classified(S0, description="The source system's own report id.")


class Risk(Contract):
    level: RiskLevel = classified(S1)
    immediate_danger: bool = classified(S1)
    perpetrator_present: bool = classified(S1)
    weapon: bool = classified(S1)
    injury: bool = classified(S1)
    child_involved: bool = classified(S1)
    disability: bool = classified(S1)
    pregnancy: bool = classified(S1)


class Area(Contract):
    code: str = classified(S1, pattern=r"^36\.71(\.\d{2}(\.\d{4})?)?$")
    name: str = classified(S1)


class Point(Contract):
    lat: float = classified(S2, ge=-90, le=90)
    lon: float = classified(S2, ge=-180, le=180)
    accuracy_m: float | None = classified(S2, None, ge=0)


class Location(Contract):
    kecamatan: Area = classified(S1)
    kelurahan: Area = classified(S1)
    address: str | None = classified(S2, None)
    rt: str | None = classified(S2, None)
    rw: str | None = classified(S2, None)
    landmark: str | None = classified(S2, None)
    point: Point | None = classified(S2, None)


class Reporter(Contract):
    name: str | None = classified(S2, None)
    phone: str | None = classified(S2, None, description="E.164")
    relation: str | None = classified(S2, None)
    role: ReporterRole = classified(S1)
    cadre_id: str | None = classified(S2, None)
    anonymous: bool = classified(S1)


class Callback(Contract):
    phone: str = classified(S2, description="E.164 number 112 can call back.")
    role: ReporterRole = classified(S1)


class Victim(Contract):
    name: str | None = classified(S3, None)
    nik: str | None = classified(S3, None, pattern=r"^\d{16}$")
    sex: Sex | None = classified(S1, None)
    age: int | None = classified(S3, None, ge=0, le=130)
    age_band: str | None = classified(S1, None, examples=["0-5", "6-12", "13-17", "25-34"])
    is_child: bool | None = classified(S1, None)
    phone: str | None = classified(S3, None, description="Safe contact, E.164.")
    disability: bool | None = classified(S1, None)
    pregnant: bool | None = classified(S1, None)
    injuries: str | None = classified(S3, None)


class Perpetrator(Contract):
    name: str | None = classified(S3, None)
    sex: Sex | None = classified(S1, None)
    age: int | None = classified(S3, None, ge=0, le=130)
    age_band: str | None = classified(S1, None)
    relationship: Relationship | None = classified(S1, None)
    present: bool | None = classified(S1, None)
    armed: bool | None = classified(S1, None)


class Attachment(Contract):
    url: str = classified(S3)
    media_type: str | None = classified(S1, None)
    sha256: str | None = classified(S0, None, pattern=r"^[0-9a-f]{64}$")


class Consent(Contract):
    share_victim_data: bool = classified(S1)


class Case(Contract):
    """A KDRT case as the gateway keeps it (``kdrt-case/1``)."""

    case_id: str = classified(S0, pattern=r"^urn:tangerangkota:kdrt:[0-9A-HJKMNP-TV-Z]{26}$")
    source: Source = classified(S0)
    received_at: AwareDatetime = classified(S0)
    reported_at: AwareDatetime = classified(S1, description="When the source took the report.")
    incident_type: str = classified(S1, "kdrt")
    violence_forms: list[ViolenceForm] = classified(S1, min_length=1)
    risk: Risk = classified(S1)
    needs_other_agencies: bool = classified(S1)
    requested_agencies: list[Agency] = classified(S1, default_factory=list)
    agency_request_reason: str | None = classified(S1, None)
    location: Location = classified(S1)
    place_category: PlaceCategory | None = classified(S1, None)
    narrative: str | None = classified(S3, None)
    reporter: Reporter = classified(S2)
    callback: Callback | None = classified(S2, None)
    victims: list[Victim] = classified(S3, min_length=1)
    perpetrators: list[Perpetrator] = classified(S3, default_factory=list)
    attachments: list[Attachment] = classified(S3, default_factory=list)
    consent: Consent = classified(S1)


class CaseAccepted(BaseModel):
    """The answer to an accepted report."""

    model_config = ConfigDict(extra="forbid")

    case_id: str = Field(examples=["urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A"])
    duplicate: bool = Field(description="True when this source report was accepted before.")
    received_at: datetime
    needs_other_agencies: bool
    c112_deadline_at: datetime | None = None
