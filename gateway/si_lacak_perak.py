"""A Si Lacak Perak v1 report → the canonical case (``kdrt-case/1``), or every wrong field.

Validation is one pass in two layers, and all errors of both come back together:

1. **Structure** — ``contracts.si_lacak_perak.LaporanSiLacakPerak`` (strict pydantic):
   types, required fields, the closed vocabularies, numeric ranges, NIK and sha256
   formats. Each pydantic error's ``loc`` becomes an RFC 6901 pointer; its ``detail``
   is written here per error type. Pydantic's own messages, inputs and contexts are
   never copied, so no detail can echo a submitted value.
2. **Meaning** — on the raw JSON, wherever the value is a string: ``waktu_laporan``
   parses as a time, phone numbers are valid, ``tanggal_lahir`` is a past date,
   kecamatan and kelurahan are places of Kota Tangerang (unknown places come with
   suggestions). This runs even when the structure is wrong elsewhere.

Decisions:

- Unknown fields are ignored (the app may add fields before the gateway knows them).
- ``null`` counts as absent for every optional field.
- ``lokasi.kelurahan`` is required; ``lokasi.kecamatan`` may be left out, then it is the
  kelurahan's own. When both are given the kelurahan must lie in that kecamatan.
- A victim's age comes from ``tanggal_lahir`` (exact, computed on the WIB day the
  report was received) when given, else from ``usia``; under 18 is a child.
- Reporter role: a PATBM cadre (``pelapor.kader_patbm`` or ``kanal`` ``kader_patbm``);
  ``korban`` / ``diri sendiri`` → self; ``tetangga`` → neighbour; a family word
  (suami, istri, ayah, ibu, anak, saudara, kakak, adik, keluarga, orang tua, mertua,
  paman, bibi, nenek, kakek) → family; anything else → other.
- A missing ``pelapor`` is an anonymous reporter. An anonymous reporter's details are
  kept as given (the store keeps them; redaction hides them), but the case gets no
  ``callback``: an anonymous reporter's number is never handed to anyone.
- ``persetujuan.berbagi_data_korban`` absent → no consent.

Risk rule (:func:`assess_risk`); flags: immediate_danger = ``bahaya_langsung``;
perpetrator_present = any ``masih_di_lokasi``; weapon = any ``bersenjata``; injury =
any victim with ``luka`` or ``butuh_medis``; injured child = a child victim with
``luka``, or ``butuh_medis`` with a child victim; child_involved = ``ada_anak`` or a
child victim; disability / pregnancy = any victim's ``disabilitas`` / ``hamil``.

    critical  weapon, or immediate danger with the perpetrator present and an injured child
    high      immediate danger, or perpetrator present with injury, or an injured child
    medium    injury, child involved, perpetrator present, disability or pregnancy
    low       otherwise

Requested agencies: police when ``butuh_polisi``, a weapon, or immediate danger with the
perpetrator present; health when ``butuh_medis`` or an injured child. The reason names
only these flags (S1, no personal data).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import get_args

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from contracts.case import (
    Agency,
    Area,
    Attachment,
    Callback,
    Case,
    Channel,
    Consent,
    Location,
    Perpetrator,
    PlaceCategory,
    Point,
    Relationship,
    Reporter,
    ReporterRole,
    Risk,
    RiskLevel,
    Sex,
    Source,
    Victim,
    ViolenceForm,
)
from contracts.problem import FieldError
from contracts.si_lacak_perak import (
    INVALID_TEXT,
    HubunganTerlapor,
    JenisKekerasan,
    JenisKelamin,
    Kanal,
    KondisiDarurat,
    Korban,
    LaporanSiLacakPerak,
    Pelapor,
    TempatKejadian,
    Terlapor,
)
from gateway.errors import InvalidReport
from gateway.phones import to_e164
from gateway.times import age_at, age_band, is_child, to_date, to_utc
from gateway.wilayah import Kecamatan, Kelurahan, UnknownPlace, find_kecamatan, find_kelurahan

SOURCE_SYSTEM = "si-lacak-perak"

CHANNELS: Mapping[Kanal, Channel] = {
    "aplikasi": Channel.APP,
    "hotline": Channel.HOTLINE,
    "whatsapp": Channel.WHATSAPP,
    "kader_patbm": Channel.PATBM_CADRE,
}
VIOLENCE_FORMS: Mapping[JenisKekerasan, ViolenceForm] = {
    "fisik": ViolenceForm.PHYSICAL,
    "psikis": ViolenceForm.PSYCHOLOGICAL,
    "seksual": ViolenceForm.SEXUAL,
    "penelantaran": ViolenceForm.HOUSEHOLD_NEGLECT,
    "eksploitasi": ViolenceForm.EXPLOITATION,
    "trafiking": ViolenceForm.TRAFFICKING,
    "lainnya": ViolenceForm.OTHER,
}
PLACE_CATEGORIES: Mapping[TempatKejadian, PlaceCategory] = {
    "rumah_tangga": PlaceCategory.HOUSEHOLD,
    "tempat_kerja": PlaceCategory.WORKPLACE,
    "sekolah": PlaceCategory.SCHOOL,
    "fasilitas_umum": PlaceCategory.PUBLIC_FACILITY,
    "lainnya": PlaceCategory.OTHER,
}
SEXES: Mapping[JenisKelamin, Sex] = {"L": Sex.MALE, "P": Sex.FEMALE}
RELATIONSHIPS: Mapping[HubunganTerlapor, Relationship] = {
    "suami": Relationship.HUSBAND,
    "istri": Relationship.WIFE,
    "ayah": Relationship.FATHER,
    "ibu": Relationship.MOTHER,
    "ayah_tiri": Relationship.STEPFATHER,
    "ibu_tiri": Relationship.STEPMOTHER,
    "anak": Relationship.CHILD,
    "saudara": Relationship.SIBLING,
    "mertua": Relationship.PARENT_IN_LAW,
    "pacar": Relationship.PARTNER,
    "lainnya": Relationship.OTHER,
}

_SELF_WORDS = frozenset({"korban", "diri sendiri", "sendiri", "saya sendiri"})
_FAMILY_WORDS = frozenset(
    {
        "suami",
        "istri",
        "ayah",
        "ibu",
        "anak",
        "saudara",
        "kakak",
        "adik",
        "keluarga",
        "orangtua",
        "mertua",
        "paman",
        "bibi",
        "nenek",
        "kakek",
    }
)

# Field name → its closed vocabulary, for the "must be one of" details.
_VOCABULARIES: Mapping[str, tuple[str, ...]] = {
    "kanal": get_args(Kanal),
    "jenis_kekerasan": get_args(JenisKekerasan),
    "tempat_kejadian": get_args(TempatKejadian),
    "jenis_kelamin": get_args(JenisKelamin),
    "hubungan_dengan_korban": get_args(HubunganTerlapor),
}
_PATTERN_DETAILS: Mapping[str, str] = {
    "nik": "must be exactly 16 digits",
    "sha256": "must be 64 hexadecimal characters",
    "id_laporan": "must not be blank",
}
_TYPE_DETAILS: Mapping[str, str] = {
    "missing": "is required",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "string_too_short": "must not be empty",
    INVALID_TEXT: "contains characters that are not text (lone surrogates)",
}


def source_reference(raw: object) -> str | None:
    """The report's own id (``id_laporan``) when it has one, even if the rest is invalid."""
    if isinstance(raw, dict):
        reference = raw.get("id_laporan")
        if isinstance(reference, str) and reference.strip():
            return reference
    return None


def normalise_report(raw: object, *, case_id: str, received_at: datetime) -> Case:
    """Map ``raw`` (the parsed JSON body) to a :class:`Case`; raise :class:`InvalidReport`
    naming every wrong field otherwise."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    errors = _Errors()
    report: LaporanSiLacakPerak | None = None
    try:
        report = LaporanSiLacakPerak.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            errors.add(pointer(error["loc"]), _structure_detail(error))
    resolved = _resolve(raw, received_at, errors)
    if report is None or errors:
        raise InvalidReport(errors.collected())
    return _build(report, resolved, case_id=case_id, received_at=received_at)


# --- risk ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskSignals:
    """What the report says about danger, reduced to the flags the rule reads."""

    immediate_danger: bool = False
    perpetrator_present: bool = False
    weapon: bool = False
    injury: bool = False
    injured_child: bool = False
    child_involved: bool = False
    disability: bool = False
    pregnancy: bool = False
    police_requested: bool = False
    medical_requested: bool = False


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    risk: Risk
    requested_agencies: list[Agency]
    reason: str | None


def assess_risk(signals: RiskSignals) -> RiskAssessment:
    """The risk level and the agencies to request (rule in the module docstring)."""
    s = signals
    danger_with_perpetrator = s.immediate_danger and s.perpetrator_present
    if s.weapon or (danger_with_perpetrator and s.injured_child):
        level = RiskLevel.CRITICAL
    elif s.immediate_danger or (s.perpetrator_present and s.injury) or s.injured_child:
        level = RiskLevel.HIGH
    elif s.injury or s.child_involved or s.perpetrator_present or s.disability or s.pregnancy:
        level = RiskLevel.MEDIUM
    else:
        level = RiskLevel.LOW

    triggers: dict[Agency, list[str]] = {}
    for agency, flag, label in (
        (Agency.POLICE, s.police_requested, "police requested"),
        (Agency.POLICE, s.weapon, "weapon"),
        (Agency.POLICE, danger_with_perpetrator, "immediate danger with perpetrator present"),
        (Agency.HEALTH, s.medical_requested, "medical help requested"),
        (Agency.HEALTH, s.injured_child, "injured child"),
    ):
        if flag:
            triggers.setdefault(agency, []).append(label)
    agencies = sorted(triggers)
    reason = "; ".join(f"{a.value}: {', '.join(triggers[a])}" for a in agencies) or None
    risk = Risk(
        level=level,
        immediate_danger=s.immediate_danger,
        perpetrator_present=s.perpetrator_present,
        weapon=s.weapon,
        injury=s.injury,
        child_involved=s.child_involved,
        disability=s.disability,
        pregnancy=s.pregnancy,
    )
    return RiskAssessment(risk, agencies, reason)


def reporter_role(relation: str | None, *, cadre: bool) -> ReporterRole:
    """The reporter's role from ``hubungan_dengan_korban`` (rule in the module docstring)."""
    if cadre:
        return ReporterRole.PATBM_CADRE
    words = " ".join((relation or "").lower().replace("_", " ").replace("-", " ").split())
    if words in _SELF_WORDS:
        return ReporterRole.SELF
    tokens = set(words.split()) | ({"orangtua"} if "orang tua" in words else set())
    if "tetangga" in tokens:
        return ReporterRole.NEIGHBOUR
    if tokens & _FAMILY_WORDS:
        return ReporterRole.FAMILY
    return ReporterRole.OTHER


# --- errors --------------------------------------------------------------------------


def pointer(loc: Iterable[str | int]) -> str:
    """RFC 6901 JSON pointer of a location path: ``("korban", 0, "usia")`` → ``/korban/0/usia``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


class _Errors:
    """One FieldError per pointer, the first reason found."""

    def __init__(self) -> None:
        self._by_pointer: dict[str, FieldError] = {}

    def add(self, at: str, detail: str, suggestions: Sequence[str] | None = None) -> None:
        if at not in self._by_pointer:
            self._by_pointer[at] = FieldError(
                pointer=at, detail=detail, suggestions=list(suggestions) if suggestions else None
            )

    def __bool__(self) -> bool:
        return bool(self._by_pointer)

    def __contains__(self, at: str) -> bool:
        return at in self._by_pointer

    def collected(self) -> list[FieldError]:
        return list(self._by_pointer.values())


def _field_name(loc: Sequence[str | int]) -> str | None:
    return next((part for part in reversed(loc) if isinstance(part, str)), None)


def _bound(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "the allowed limit"
    return f"{value:g}"


def _structure_detail(error: ErrorDetails) -> str:
    kind, loc = error["type"], error["loc"]
    name = _field_name(loc)
    ctx = error.get("ctx") or {}
    if not loc:
        return "the report must be a JSON object"
    if kind == "literal_error":
        allowed = _VOCABULARIES.get(name or "")
        return f"must be one of: {', '.join(allowed)}" if allowed else "is not an accepted value"
    if kind == "string_pattern_mismatch":
        return _PATTERN_DETAILS.get(name or "", "has the wrong format")
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {_bound(ctx.get('ge', ctx.get('gt')))}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {_bound(ctx.get('le', ctx.get('lt')))}"
    if kind == "too_short":
        return f"must have at least {_bound(ctx.get('min_length'))} item(s)"
    if kind in ("string_too_long", "too_long"):
        return f"must be at most {_bound(ctx.get('max_length'))} characters long"
    return _TYPE_DETAILS.get(kind, "is not valid")


# --- meaning -------------------------------------------------------------------------


@dataclass
class _Resolved:
    reported_at: datetime | None = None
    reporter_phone: str | None = None
    victim_phones: dict[int, str] = field(default_factory=dict)
    victim_birth_ages: dict[int, int] = field(default_factory=dict)
    kecamatan: Kecamatan | None = None
    kelurahan: Kelurahan | None = None


def _at(raw: object, *path: str | int) -> object:
    node = raw
    for key in path:
        if isinstance(key, int) and isinstance(node, list) and 0 <= key < len(node):
            node = node[key]
        elif isinstance(key, str) and isinstance(node, dict):
            node = node.get(key)
        else:
            return None
    return node


def _text_at(raw: object, errors: _Errors, *path: str | int) -> str | None:
    """The text at ``path``, unless the structure check refused it already (too long...)."""
    if pointer(path) in errors:
        return None
    value = _at(raw, *path)
    return value if isinstance(value, str) else None


def _resolve(raw: object, received_at: datetime, errors: _Errors) -> _Resolved:
    resolved = _Resolved()
    if (text := _text_at(raw, errors, "waktu_laporan")) is not None:
        try:
            resolved.reported_at = to_utc(text)
        except ValueError:
            errors.add(
                "/waktu_laporan", "must be an ISO 8601 date and time (or YYYY-MM-DD HH:MM:SS)"
            )
    if (text := _text_at(raw, errors, "pelapor", "no_hp")) is not None:
        resolved.reporter_phone = _phone(text, "/pelapor/no_hp", errors)
    victims = _at(raw, "korban")
    for i in range(len(victims) if isinstance(victims, list) else 0):
        if (text := _text_at(raw, errors, "korban", i, "no_hp")) is not None:
            phone = _phone(text, f"/korban/{i}/no_hp", errors)
            if phone is not None:
                resolved.victim_phones[i] = phone
        if (text := _text_at(raw, errors, "korban", i, "tanggal_lahir")) is not None:
            age = _age_from_birth_date(text, received_at, f"/korban/{i}/tanggal_lahir", errors)
            if age is not None:
                resolved.victim_birth_ages[i] = age
    _resolve_place(raw, resolved, errors)
    return resolved


def _phone(text: str, at: str, errors: _Errors) -> str | None:
    try:
        return to_e164(text)
    except ValueError:
        errors.add(at, "is not a valid phone number")
        return None


def _age_from_birth_date(text: str, received_at: datetime, at: str, errors: _Errors) -> int | None:
    try:
        age = age_at(to_date(text), received_at)
    except ValueError:
        errors.add(at, "must be a date written YYYY-MM-DD")
        return None
    if age < 0:
        errors.add(at, "must not lie after the day the report was received")
        return None
    if age > 130:
        errors.add(at, "gives an age over 130 years")
        return None
    return age


def _resolve_place(raw: object, resolved: _Resolved, errors: _Errors) -> None:
    kecamatan_name = _text_at(raw, errors, "lokasi", "kecamatan")
    kelurahan_name = _text_at(raw, errors, "lokasi", "kelurahan")
    unknown_kecamatan: UnknownPlace | None = None
    if kecamatan_name is not None:
        try:
            resolved.kecamatan = find_kecamatan(kecamatan_name)
        except UnknownPlace as exc:
            unknown_kecamatan = exc
    if kelurahan_name is not None:
        try:
            resolved.kelurahan = find_kelurahan(kelurahan_name, resolved.kecamatan)
        except UnknownPlace as exc:
            errors.add("/lokasi/kelurahan", exc.reason, exc.suggestions)
    if unknown_kecamatan is not None:
        suggestions = list(unknown_kecamatan.suggestions)
        if resolved.kelurahan is not None:
            home = resolved.kelurahan.kecamatan.name
            suggestions = [home, *(name for name in suggestions if name != home)]
        errors.add("/lokasi/kecamatan", unknown_kecamatan.reason, suggestions[:3])
    elif resolved.kecamatan is None and resolved.kelurahan is not None:
        resolved.kecamatan = resolved.kelurahan.kecamatan


# --- mapping -------------------------------------------------------------------------


def _clean(text: str | None) -> str | None:
    stripped = text.strip() if text is not None else ""
    return stripped or None


def _victim(korban: Korban, age: int | None, phone: str | None) -> Victim:
    return Victim(
        name=_clean(korban.nama),
        nik=korban.nik,
        sex=SEXES[korban.jenis_kelamin] if korban.jenis_kelamin else None,
        age=age,
        age_band=age_band(age) if age is not None else None,
        is_child=is_child(age) if age is not None else None,
        phone=phone,
        disability=korban.disabilitas,
        pregnant=korban.hamil,
        injuries=_clean(korban.luka),
    )


def _perpetrator(terlapor: Terlapor) -> Perpetrator:
    return Perpetrator(
        name=_clean(terlapor.nama),
        sex=SEXES[terlapor.jenis_kelamin] if terlapor.jenis_kelamin else None,
        age=terlapor.usia,
        age_band=age_band(terlapor.usia) if terlapor.usia is not None else None,
        relationship=(
            RELATIONSHIPS[terlapor.hubungan_dengan_korban]
            if terlapor.hubungan_dengan_korban
            else None
        ),
        present=terlapor.masih_di_lokasi,
        armed=terlapor.bersenjata,
    )


def _reporter(pelapor: Pelapor | None, kanal: Kanal, phone: str | None) -> Reporter:
    if pelapor is None:
        return Reporter(role=reporter_role(None, cadre=kanal == "kader_patbm"), anonymous=True)
    relation = _clean(pelapor.hubungan_dengan_korban)
    return Reporter(
        name=_clean(pelapor.nama),
        phone=phone,
        relation=relation,
        role=reporter_role(relation, cadre=bool(pelapor.kader_patbm) or kanal == "kader_patbm"),
        cadre_id=_clean(pelapor.id_kader),
        anonymous=bool(pelapor.anonim),
    )


def _location(report: LaporanSiLacakPerak, kecamatan: Kecamatan, kelurahan: Kelurahan) -> Location:
    lokasi = report.lokasi
    koordinat = lokasi.koordinat
    return Location(
        kecamatan=Area(code=kecamatan.code, name=kecamatan.name),
        kelurahan=Area(code=kelurahan.code, name=kelurahan.name),
        address=_clean(lokasi.alamat),
        rt=_clean(lokasi.rt),
        rw=_clean(lokasi.rw),
        landmark=_clean(lokasi.patokan),
        point=(
            Point(lat=koordinat.lat, lon=koordinat.lng, accuracy_m=koordinat.akurasi_m)
            if koordinat
            else None
        ),
    )


def _build(
    report: LaporanSiLacakPerak, resolved: _Resolved, *, case_id: str, received_at: datetime
) -> Case:
    if resolved.reported_at is None or resolved.kecamatan is None or resolved.kelurahan is None:
        raise AssertionError("a report without errors has a time and a place")
    victims = [
        _victim(
            korban,
            resolved.victim_birth_ages.get(i, korban.usia),
            resolved.victim_phones.get(i),
        )
        for i, korban in enumerate(report.korban)
    ]
    perpetrators = [_perpetrator(t) for t in report.terlapor or []]
    reporter = _reporter(report.pelapor, report.kanal, resolved.reporter_phone)
    emergency = report.kondisi_darurat or KondisiDarurat()
    child_victims = [k for k, v in zip(report.korban, victims, strict=True) if v.is_child]
    medical_requested = bool(emergency.butuh_medis)
    assessment = assess_risk(
        RiskSignals(
            immediate_danger=bool(emergency.bahaya_langsung),
            perpetrator_present=any(t.masih_di_lokasi for t in report.terlapor or []),
            weapon=any(t.bersenjata for t in report.terlapor or []),
            injury=medical_requested or any(v.injuries for v in victims),
            injured_child=bool(child_victims)
            and (medical_requested or any(_clean(k.luka) for k in child_victims)),
            child_involved=bool(emergency.ada_anak) or bool(child_victims),
            disability=any(v.disability for v in victims),
            pregnancy=any(v.pregnant for v in victims),
            police_requested=bool(emergency.butuh_polisi),
            medical_requested=medical_requested,
        )
    )
    return Case(
        case_id=case_id,
        source=Source(
            system=SOURCE_SYSTEM, channel=CHANNELS[report.kanal], reference=report.id_laporan
        ),
        received_at=received_at,
        reported_at=resolved.reported_at,
        violence_forms=list(dict.fromkeys(VIOLENCE_FORMS[j] for j in report.jenis_kekerasan)),
        risk=assessment.risk,
        needs_other_agencies=bool(assessment.requested_agencies),
        requested_agencies=assessment.requested_agencies,
        agency_request_reason=assessment.reason,
        location=_location(report, resolved.kecamatan, resolved.kelurahan),
        place_category=PLACE_CATEGORIES[report.tempat_kejadian] if report.tempat_kejadian else None,
        narrative=_clean(report.kronologi),
        reporter=reporter,
        callback=(
            Callback(phone=reporter.phone, role=reporter.role)
            if reporter.phone and not reporter.anonymous
            else None
        ),
        victims=victims,
        perpetrators=perpetrators,
        attachments=[
            Attachment(
                url=lampiran.url,
                media_type=_clean(lampiran.jenis),
                sha256=lampiran.sha256.lower() if lampiran.sha256 else None,
            )
            for lampiran in report.lampiran or []
        ],
        consent=Consent(
            share_victim_data=bool(report.persetujuan and report.persetujuan.berbagi_data_korban)
        ),
    )
