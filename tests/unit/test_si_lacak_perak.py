import copy
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import set_at, string_paths

from contracts.case import (
    Agency,
    Case,
    Channel,
    PlaceCategory,
    Relationship,
    ReporterRole,
    RiskLevel,
    ViolenceForm,
)
from contracts.problem import FieldError
from contracts.si_lacak_perak import (
    HubunganTerlapor,
    JenisKekerasan,
    JenisKelamin,
    Kanal,
    TempatKejadian,
)
from gateway import si_lacak_perak as slp
from gateway.errors import InvalidReport
from gateway.si_lacak_perak import (
    RiskSignals,
    assess_risk,
    normalise_report,
    pointer,
    reporter_role,
    source_reference,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
CASE_ID = "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A"
RECEIVED_AT = datetime(2026, 11, 30, 6, 45, 10, 398000, tzinfo=UTC)
JSON_POINTER = re.compile(r"(/([^~/]|~[01])*)*")

Json = Any


def load(name: str) -> Json:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


VALID = [
    "valid-01-app-basic.json",
    "valid-02-patbm-cadre-child.json",
    "valid-03-hotline-anonymous-no-medis.json",
]


def normalise(raw: Json) -> Case:
    return normalise_report(raw, case_id=CASE_ID, received_at=RECEIVED_AT)


def errors_of(raw: Json) -> list[FieldError]:
    with pytest.raises(InvalidReport) as caught:
        normalise(raw)
    return caught.value.errors


def pointers_of(raw: Json) -> set[str]:
    errors = errors_of(raw)
    pointers = [e.pointer for e in errors]
    assert len(pointers) == len(set(pointers)), "one error per wrong field"
    return set(pointers)


def with_(mutate: Callable[[Json], None]) -> Json:
    raw = load("valid-01-app-basic.json")
    mutate(raw)
    return raw


# --- the samples ---------------------------------------------------------------------


def assert_contains(expected: Json, actual: Json, at: str = "") -> None:
    """Every key and item of ``expected`` is in ``actual`` with the same value."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), at
        for key, value in expected.items():
            assert key in actual, f"{at}/{key} missing"
            assert_contains(value, actual[key], f"{at}/{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), at
        assert len(expected) == len(actual), at
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_contains(e, a, f"{at}/{i}")
    else:
        assert expected == actual, at


def test_valid_01_matches_what_112_receives() -> None:
    push = load("c112/push-case-to-112.json")
    content = dict(push["content"])
    received_at = datetime.fromisoformat(content.pop("received_at"))
    case = normalise_report(
        load("valid-01-app-basic.json"), case_id=push["case_id"], received_at=received_at
    )
    assert case.received_at == received_at
    assert_contains(content, case.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "valid-01-app-basic.json",
            {
                "source": {"channel": "app", "reference": "SLP-20261130-0001"},
                "reported_at": "2026-11-30T06:45:10Z",
                "risk": {"level": "high", "injury": True, "child_involved": True},
                "needs_other_agencies": True,
                "requested_agencies": ["police"],
                "reporter": {"role": "neighbour", "anonymous": False, "phone": "+6281200007801"},
                "callback": {"phone": "+6281200007801", "role": "neighbour"},
                "victims": [
                    {"age": 29, "phone": "+6281200007802", "injuries": "memar di lengan kiri"}
                ],
                "consent": {"share_victim_data": True},
            },
        ),
        (
            "valid-02-patbm-cadre-child.json",
            {
                "source": {"channel": "patbm_cadre", "reference": "SLP-20261130-0002"},
                "reported_at": "2026-11-30T07:02:00Z",
                "violence_forms": ["physical"],
                "risk": {
                    "level": "high",
                    "immediate_danger": False,
                    "perpetrator_present": False,
                    "injury": True,
                    "child_involved": True,
                },
                "needs_other_agencies": True,
                "requested_agencies": ["health"],
                "agency_request_reason": "health: medical help requested, injured child",
                "location": {
                    "kecamatan": {"code": "36.71.05", "name": "Cipondoh"},
                    "kelurahan": {"code": "36.71.05.1005", "name": "Kenanga"},
                    "point": None,
                },
                "reporter": {"role": "patbm_cadre", "cadre_id": "PATBM-CPD-017"},
                "callback": {"phone": "+6281300002211", "role": "patbm_cadre"},
                "victims": [{"sex": "male", "age_band": "6-12", "is_child": True}],
                "perpetrators": [{"relationship": "stepfather", "present": False}],
            },
        ),
        (
            "valid-03-hotline-anonymous-no-medis.json",
            {
                "source": {"channel": "hotline", "reference": "SLP-20261130-0003"},
                "reported_at": "2026-11-30T14:10:44Z",
                "violence_forms": ["psychological", "household_neglect"],
                "risk": {"level": "medium", "perpetrator_present": True, "injury": False},
                "needs_other_agencies": False,
                "requested_agencies": [],
                "agency_request_reason": None,
                "location": {
                    "kecamatan": {"code": "36.71.12", "name": "Karang Tengah"},
                    "kelurahan": {"code": "36.71.12.1001", "name": "Karang Tengah"},
                },
                "reporter": {"role": "self", "anonymous": True, "phone": "+6285700004410"},
                "callback": None,
                "victims": [{"sex": "female", "age_band": "35-44", "is_child": False}],
                "consent": {"share_victim_data": False},
            },
        ),
    ],
)
def test_valid_samples(fixture: str, expected: Json) -> None:
    case = normalise(load(fixture))
    assert case.case_id == CASE_ID
    assert case.source.system == "si-lacak-perak"
    assert case.received_at == RECEIVED_AT
    assert_contains(expected, case.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("invalid-01-missing-location-bad-phone.json", {"/lokasi", "/pelapor/no_hp"}),
        (
            "invalid-02-unknown-kelurahan-and-type.json",
            {
                "/kanal",
                "/korban/0/jenis_kelamin",
                "/korban/0/usia",
                "/lokasi/kelurahan",
                "/lokasi/kecamatan",
                "/jenis_kekerasan/0",
            },
        ),
    ],
)
def test_invalid_samples_name_every_wrong_field(fixture: str, expected: set[str]) -> None:
    assert pointers_of(load(fixture)) == expected


def test_unknown_places_come_with_suggestions() -> None:
    errors = {e.pointer: e for e in errors_of(load("invalid-02-unknown-kelurahan-and-type.json"))}
    for at in ("/lokasi/kelurahan", "/lokasi/kecamatan"):
        assert errors[at].suggestions
        assert len(errors[at].suggestions or []) <= 3
    assert errors["/kanal"].suggestions is None


# --- structure and meaning, field by field --------------------------------------------


def _set(path: str, value: Json) -> Callable[[Json], None]:
    def change(raw: Json) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
        node = raw
        for part in parents:
            node = node[part]
        node[last] = value

    return change


def _drop(path: str) -> Callable[[Json], None]:
    def change(raw: Json) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
        node = raw
        for part in parents:
            node = node[part]
        del node[last]

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_drop("/kanal"), {"/kanal"}),
        (_drop("/id_laporan"), {"/id_laporan"}),
        (_set("/id_laporan", "   "), {"/id_laporan"}),
        (_set("/id_laporan", 17), {"/id_laporan"}),
        (_drop("/waktu_laporan"), {"/waktu_laporan"}),
        (_set("/waktu_laporan", "kemarin sore"), {"/waktu_laporan"}),
        (_set("/waktu_laporan", "2026-11-30"), {"/waktu_laporan"}),
        (_set("/waktu_laporan", 1764485110), {"/waktu_laporan"}),
        (_set("/pelapor", "Siti"), {"/pelapor"}),
        (_set("/pelapor/anonim", "tidak"), {"/pelapor/anonim"}),
        (_set("/pelapor/kader_patbm", 0), {"/pelapor/kader_patbm"}),
        (_set("/pelapor/no_hp", 81200007801), {"/pelapor/no_hp"}),
        (_drop("/korban"), {"/korban"}),
        (_set("/korban", []), {"/korban"}),
        (_set("/korban", {"usia": 3}), {"/korban"}),
        (_set("/korban", [1]), {"/korban/0"}),
        (_set("/korban/0/usia", 131), {"/korban/0/usia"}),
        (_set("/korban/0/usia", "29"), {"/korban/0/usia"}),
        (_set("/korban/0/usia", 29.5), {"/korban/0/usia"}),
        (_set("/korban/0/usia", True), {"/korban/0/usia"}),
        (_set("/korban/0/nik", "12345"), {"/korban/0/nik"}),
        (_set("/korban/0/nik", 3671012345678901), {"/korban/0/nik"}),
        (_set("/korban/0/no_hp", "0812"), {"/korban/0/no_hp"}),
        (_set("/korban/0/tanggal_lahir", "04-03-1997"), {"/korban/0/tanggal_lahir"}),
        (_set("/korban/0/tanggal_lahir", "2027-01-01"), {"/korban/0/tanggal_lahir"}),
        (_set("/korban/0/tanggal_lahir", "1880-01-01"), {"/korban/0/tanggal_lahir"}),
        (_set("/korban/0/jenis_kelamin", "p"), {"/korban/0/jenis_kelamin"}),
        (_set("/korban/0/luka", ["memar"]), {"/korban/0/luka"}),
        (_set("/terlapor", None), set()),
        (
            _set("/terlapor/0/hubungan_dengan_korban", "tetangga"),
            {"/terlapor/0/hubungan_dengan_korban"},
        ),
        (_set("/terlapor/0/usia", -1), {"/terlapor/0/usia"}),
        (_set("/terlapor/0/bersenjata", "ya"), {"/terlapor/0/bersenjata"}),
        (_drop("/lokasi/kelurahan"), {"/lokasi/kelurahan"}),
        (_drop("/lokasi/kecamatan"), set()),
        (_set("/lokasi/kecamatan", None), set()),
        (_set("/lokasi/kelurahan", "Kenanga"), {"/lokasi/kelurahan"}),
        (_set("/lokasi/kecamatan", "Menteng"), {"/lokasi/kecamatan"}),
        (_set("/lokasi/kecamatan", 11), {"/lokasi/kecamatan"}),
        (_set("/lokasi/rt", 3), {"/lokasi/rt"}),
        (_set("/lokasi/koordinat/lat", 100), {"/lokasi/koordinat/lat"}),
        (_set("/lokasi/koordinat/lng", float("nan")), {"/lokasi/koordinat/lng"}),
        (_set("/lokasi/koordinat/akurasi_m", -1), {"/lokasi/koordinat/akurasi_m"}),
        (_set("/lokasi/koordinat/lat", 10**400), {"/lokasi/koordinat/lat"}),
        (_drop("/lokasi/koordinat/lng"), {"/lokasi/koordinat/lng"}),
        (_set("/jenis_kekerasan", []), {"/jenis_kekerasan"}),
        (_set("/jenis_kekerasan", "fisik"), {"/jenis_kekerasan"}),
        (
            _set("/jenis_kekerasan", ["fisik", "pukul", "lainnya", 3]),
            {"/jenis_kekerasan/1", "/jenis_kekerasan/3"},
        ),
        (_set("/tempat_kejadian", "jalan"), {"/tempat_kejadian"}),
        (_set("/kondisi_darurat/bahaya_langsung", "ya"), {"/kondisi_darurat/bahaya_langsung"}),
        (
            _set("/lampiran", [{"url": "https://x.test/a.jpg", "sha256": "abc"}]),
            {"/lampiran/0/sha256"},
        ),
        (_set("/lampiran", [{"jenis": "image/jpeg"}]), {"/lampiran/0/url"}),
        (_set("/lampiran", [{"url": ""}]), {"/lampiran/0/url"}),
        (_set("/persetujuan/berbagi_data_korban", "ya"), {"/persetujuan/berbagi_data_korban"}),
        (_set("/kronologi", "teriakan \ud800"), {"/kronologi"}),
        (_set("/versi_format", 2), set()),
        (_set("/pelapor/warna_favorit", "biru"), set()),
    ],
)
def test_field_checks(change: Callable[[Json], None], expected: set[str]) -> None:
    raw = with_(change)
    if expected:
        assert pointers_of(raw) == expected
    else:
        normalise(raw)


@pytest.mark.parametrize("raw", [[], ["valid"], "laporan", 3, None, True, 1.5])
def test_a_report_that_is_not_an_object(raw: Json) -> None:
    errors = errors_of(raw)
    assert [e.pointer for e in errors] == [""]


def test_an_empty_object_names_every_required_field() -> None:
    assert pointers_of({}) == {
        "/id_laporan",
        "/waktu_laporan",
        "/kanal",
        "/korban",
        "/lokasi",
        "/jenis_kekerasan",
    }


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        ((), ""),
        (("kanal",), "/kanal"),
        (("korban", 0, "usia"), "/korban/0/usia"),
        (("a/b", "m~n"), "/a~1b/m~0n"),
    ],
)
def test_pointer(loc: tuple[str | int, ...], expected: str) -> None:
    assert pointer(loc) == expected


# --- mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vocabulary", "mapping", "target"),
    [
        (Kanal, slp.CHANNELS, Channel),
        (JenisKekerasan, slp.VIOLENCE_FORMS, ViolenceForm),
        (TempatKejadian, slp.PLACE_CATEGORIES, PlaceCategory),
        (HubunganTerlapor, slp.RELATIONSHIPS, Relationship),
        (JenisKelamin, slp.SEXES, None),
    ],
)
def test_every_source_word_is_mapped(vocabulary: Any, mapping: Any, target: Any) -> None:
    assert set(mapping) == set(get_args(vocabulary))
    if target is not None:
        assert set(mapping.values()) == set(target)


def test_the_mapped_values_reach_the_case() -> None:
    raw = with_(_set("/jenis_kekerasan", ["seksual", "eksploitasi", "seksual", "trafiking"]))
    raw["tempat_kejadian"] = "fasilitas_umum"
    raw["kanal"] = "whatsapp"
    raw["terlapor"][0]["hubungan_dengan_korban"] = "mertua"
    raw["korban"][0]["jenis_kelamin"] = "L"
    case = normalise(raw)
    assert case.violence_forms == [
        ViolenceForm.SEXUAL,
        ViolenceForm.EXPLOITATION,
        ViolenceForm.TRAFFICKING,
    ]
    assert case.place_category is PlaceCategory.PUBLIC_FACILITY
    assert case.source.channel is Channel.WHATSAPP
    assert case.perpetrators[0].relationship is Relationship.PARENT_IN_LAW
    assert case.victims[0].sex == "male"


def test_kecamatan_is_taken_from_the_kelurahan_when_left_out() -> None:
    case = normalise(with_(_drop("/lokasi/kecamatan")))
    assert case.location.kecamatan.code == "36.71.11"
    assert case.location.kelurahan.code == "36.71.11.1002"


def test_places_are_matched_tolerantly() -> None:
    raw = with_(_set("/lokasi/kecamatan", "Kec. Penang"))
    raw["lokasi"]["kelurahan"] = "kel. sudimara  penang"
    assert normalise(raw).location.kelurahan.name == "Sudimara Pinang"


def test_unknown_kecamatan_suggests_the_kelurahans_own_first() -> None:
    errors = errors_of(with_(_set("/lokasi/kecamatan", "Cibodas")))
    assert [e.pointer for e in errors] == ["/lokasi/kelurahan"]
    errors = errors_of(with_(_set("/lokasi/kecamatan", "Menteng")))
    assert [e.pointer for e in errors] == ["/lokasi/kecamatan"]
    assert (errors[0].suggestions or [])[0] == "Pinang"


@pytest.mark.parametrize(
    ("korban", "age", "band", "child"),
    [
        ({"usia": 9}, 9, "6-12", True),
        ({"usia": 17}, 17, "13-17", True),
        ({"usia": 18}, 18, "18-24", False),
        ({"tanggal_lahir": "2008-11-30"}, 18, "18-24", False),
        ({"tanggal_lahir": "2008-12-01"}, 17, "13-17", True),
        ({"tanggal_lahir": "2008-12-01", "usia": 18}, 17, "13-17", True),
        ({}, None, None, None),
    ],
)
def test_victim_age(korban: Json, age: int | None, band: str | None, child: bool | None) -> None:
    raw = with_(_set("/korban", [{"jenis_kelamin": "P", **korban}]))
    victim = normalise(raw).victims[0]
    assert (victim.age, victim.age_band, victim.is_child) == (age, band, child)


def test_child_victim_makes_the_case_involve_a_child() -> None:
    raw = with_(_set("/korban/0/usia", 15))
    raw["kondisi_darurat"]["ada_anak"] = False
    case = normalise(raw)
    assert case.risk.child_involved
    assert case.risk.level is RiskLevel.CRITICAL  # danger + perpetrator present + injured child
    assert case.requested_agencies == [Agency.HEALTH, Agency.POLICE]


def test_anonymous_reporter_keeps_details_but_gets_no_callback() -> None:
    case = normalise(with_(_set("/pelapor/anonim", True)))
    assert case.reporter.anonymous
    assert case.reporter.name == "Siti Rahmawati"
    assert case.reporter.phone == "+6281200007801"
    assert case.callback is None


def test_missing_reporter_is_anonymous() -> None:
    case = normalise(with_(_drop("/pelapor")))
    assert case.reporter.anonymous
    assert case.reporter.phone is None
    assert case.callback is None


def test_reporter_without_phone_gets_no_callback() -> None:
    case = normalise(with_(_drop("/pelapor/no_hp")))
    assert not case.reporter.anonymous
    assert case.callback is None


def test_optional_parts_may_be_absent_or_null() -> None:
    raw = with_(_drop("/kondisi_darurat"))
    for key in ("persetujuan", "lampiran", "tempat_kejadian", "kronologi"):
        raw[key] = None
    raw["lokasi"]["koordinat"] = None
    raw["korban"][0]["luka"] = "  "
    case = normalise(raw)
    assert case.consent.share_victim_data is False
    assert case.attachments == []
    assert case.place_category is None
    assert case.narrative is None
    assert case.location.point is None
    assert case.victims[0].injuries is None
    assert case.risk.injury is False


def test_attachments_and_nik() -> None:
    digest = "AB" * 32
    raw = with_(
        _set(
            "/lampiran", [{"url": "https://x.test/a.jpg", "jenis": "image/jpeg", "sha256": digest}]
        )
    )
    raw["korban"][0]["nik"] = "3671014101970001"
    case = normalise(raw)
    assert case.attachments[0].sha256 == digest.lower()
    assert case.attachments[0].media_type == "image/jpeg"
    assert case.victims[0].nik == "3671014101970001"


def test_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        normalise_report(load(VALID[0]), case_id=CASE_ID, received_at=datetime(2026, 11, 30))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("raw", "reference"),
    [
        ({"id_laporan": "SLP-1"}, "SLP-1"),
        ({"id_laporan": "SLP-1", "kanal": 3}, "SLP-1"),
        ({"id_laporan": ""}, None),
        ({"id_laporan": "  "}, None),
        ({"id_laporan": 7}, None),
        ({}, None),
        (["SLP-1"], None),
        ("SLP-1", None),
    ],
)
def test_source_reference(raw: Json, reference: str | None) -> None:
    assert source_reference(raw) == reference


# --- rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relation", "cadre", "role"),
    [
        ("tetangga", False, ReporterRole.NEIGHBOUR),
        ("Tetangga sebelah", False, ReporterRole.NEIGHBOUR),
        ("korban", False, ReporterRole.SELF),
        ("Diri Sendiri", False, ReporterRole.SELF),
        ("diri_sendiri", False, ReporterRole.SELF),
        ("ibu korban", False, ReporterRole.FAMILY),
        ("kakak", False, ReporterRole.FAMILY),
        ("orang tua", False, ReporterRole.FAMILY),
        ("Keluarga", False, ReporterRole.FAMILY),
        ("nenek", False, ReporterRole.FAMILY),
        ("guru", False, ReporterRole.OTHER),
        ("kader", False, ReporterRole.OTHER),
        (None, False, ReporterRole.OTHER),
        ("tetangga", True, ReporterRole.PATBM_CADRE),
        (None, True, ReporterRole.PATBM_CADRE),
    ],
)
def test_reporter_role(relation: str | None, cadre: bool, role: ReporterRole) -> None:
    assert reporter_role(relation, cadre=cadre) is role


def test_cadre_channel_makes_the_reporter_a_cadre() -> None:
    raw = with_(_set("/kanal", "kader_patbm"))
    case = normalise(raw)
    assert case.reporter.role is ReporterRole.PATBM_CADRE
    assert case.callback is not None
    assert case.callback.role is ReporterRole.PATBM_CADRE


L, M, H, C = RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL
POLICE, HEALTH = Agency.POLICE, Agency.HEALTH


@pytest.mark.parametrize(
    ("signals", "level", "agencies", "reason"),
    [
        (RiskSignals(), L, [], None),
        (RiskSignals(injury=True), M, [], None),
        (RiskSignals(child_involved=True), M, [], None),
        (RiskSignals(perpetrator_present=True), M, [], None),
        (RiskSignals(disability=True), M, [], None),
        (RiskSignals(pregnancy=True), M, [], None),
        (RiskSignals(immediate_danger=True), H, [], None),
        (RiskSignals(perpetrator_present=True, injury=True), H, [], None),
        (RiskSignals(injury=True, injured_child=True), H, [HEALTH], "health: injured child"),
        (RiskSignals(weapon=True), C, [POLICE], "police: weapon"),
        (
            RiskSignals(immediate_danger=True, perpetrator_present=True),
            H,
            [POLICE],
            "police: immediate danger with perpetrator present",
        ),
        (
            RiskSignals(
                immediate_danger=True, perpetrator_present=True, injury=True, injured_child=True
            ),
            C,
            [HEALTH, POLICE],
            "health: injured child; police: immediate danger with perpetrator present",
        ),
        (RiskSignals(police_requested=True), L, [POLICE], "police: police requested"),
        (RiskSignals(medical_requested=True), L, [HEALTH], "health: medical help requested"),
        (
            RiskSignals(police_requested=True, weapon=True, medical_requested=True, injury=True),
            C,
            [HEALTH, POLICE],
            "health: medical help requested; police: police requested, weapon",
        ),
    ],
)
def test_assess_risk(
    signals: RiskSignals, level: RiskLevel, agencies: list[Agency], reason: str | None
) -> None:
    assessment = assess_risk(signals)
    assert assessment.risk.level is level
    assert assessment.requested_agencies == agencies
    assert assessment.reason == reason
    assert assessment.risk.weapon is signals.weapon
    assert assessment.risk.injury is signals.injury


@pytest.mark.parametrize(
    ("changes", "level", "agencies"),
    [
        ({}, H, [POLICE]),
        ({"/terlapor/0/bersenjata": True}, C, [POLICE]),
        ({"/kondisi_darurat/butuh_polisi": False}, H, [POLICE]),
        (
            {"/kondisi_darurat/bahaya_langsung": False, "/kondisi_darurat/butuh_polisi": False},
            H,
            [],
        ),
        (
            {
                "/kondisi_darurat/bahaya_langsung": False,
                "/terlapor/0/masih_di_lokasi": False,
                "/kondisi_darurat/butuh_polisi": False,
            },
            M,
            [],
        ),
        ({"/kondisi_darurat/butuh_medis": True}, H, [HEALTH, POLICE]),
        ({"/korban/0/usia": 12}, C, [HEALTH, POLICE]),
        (
            {
                "/korban/0/hamil": True,
                "/korban/0/luka": None,
                "/kondisi_darurat/bahaya_langsung": False,
                "/terlapor/0/masih_di_lokasi": False,
                "/kondisi_darurat/butuh_polisi": False,
                "/kondisi_darurat/ada_anak": False,
            },
            M,
            [],
        ),
        (
            {
                "/korban/0/luka": None,
                "/kondisi_darurat/bahaya_langsung": False,
                "/terlapor/0/masih_di_lokasi": False,
                "/kondisi_darurat/butuh_polisi": False,
                "/kondisi_darurat/ada_anak": False,
            },
            L,
            [],
        ),
    ],
)
def test_risk_from_a_report(
    changes: dict[str, Json], level: RiskLevel, agencies: list[Agency]
) -> None:
    raw = load(VALID[0])
    for path, value in changes.items():
        _set(path, value)(raw)
    case = normalise(raw)
    assert case.risk.level is level
    assert case.requested_agencies == agencies
    assert case.needs_other_agencies is bool(agencies)


# --- no personal data in errors ---------------------------------------------------------


def strings_in(value: Json) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)


def assert_no_echo(raw: Json, errors: list[FieldError], min_length: int = 3) -> None:
    for submitted in {s for s in strings_in(raw) if len(s) >= min_length}:
        for error in errors:
            assert submitted not in error.detail, (error.pointer, "echoes a submitted value")


def _with_sentinels(value: Json, counter: list[int]) -> Json:
    if isinstance(value, str):
        counter[0] += 1
        return f"Zq{counter[0]}xW"
    if isinstance(value, list):
        return [_with_sentinels(v, counter) for v in value]
    if isinstance(value, dict):
        return {k: _with_sentinels(v, counter) for k, v in value.items()}
    return value


@pytest.mark.parametrize("fixture", VALID)
def test_errors_never_echo_values_of_a_report_with_every_string_wrong(fixture: str) -> None:
    raw = _with_sentinels(load(fixture), [0])
    errors = errors_of(raw)
    assert len(errors) >= 4
    assert_no_echo(raw, errors, min_length=1)


@pytest.mark.parametrize(
    "fixture",
    ["invalid-01-missing-location-bad-phone.json", "invalid-02-unknown-kelurahan-and-type.json"],
)
def test_errors_never_echo_values_of_the_invalid_samples(fixture: str) -> None:
    raw = load(fixture)
    assert_no_echo(raw, errors_of(raw))


# --- properties -----------------------------------------------------------------------

FIELD_NAMES = [
    "id_laporan", "waktu_laporan", "kanal", "pelapor", "korban", "terlapor", "lokasi",
    "jenis_kekerasan", "tempat_kejadian", "kronologi", "kondisi_darurat", "lampiran",
    "persetujuan", "nama", "no_hp", "hubungan_dengan_korban", "kader_patbm", "id_kader",
    "anonim", "nik", "jenis_kelamin", "usia", "tanggal_lahir", "disabilitas", "hamil", "luka",
    "masih_di_lokasi", "bersenjata", "alamat", "rt", "rw", "kelurahan", "kecamatan", "patokan",
    "koordinat", "lat", "lng", "akurasi_m", "bahaya_langsung", "ada_anak", "butuh_medis",
    "butuh_polisi", "url", "jenis", "sha256", "berbagi_data_korban",
]  # fmt: skip
MEANINGFUL_STRINGS = [
    "aplikasi", "kader_patbm", "fisik", "lainnya", "rumah_tangga", "L", "P", "suami",
    "Pinang", "Sudimara Pinang", "kenanga", "Cipondoh", "Menteng", "0812-0000-7801", "12345",
    "2026-11-30 13:45:10", "2026-11-30", "2010-01-01", "3671014101970001", "a" * 64, "\ud800",
    "", " ", "~/",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(MEANINGFUL_STRINGS)
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=20,
)


def _paths(value: Json, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    children: list[tuple[str | int, Json]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


@st.composite
def mutated_reports(draw: st.DrawFn) -> Json:
    raw = copy.deepcopy(draw(st.sampled_from([load(name) for name in VALID])))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(raw))
        if not paths:
            break
        *parents, last = draw(st.sampled_from(paths))
        node = raw
        for part in parents:
            node = node[part]
        if draw(st.booleans()):
            node[last] = draw(json_values)
        else:
            del node[last]
    return raw


def _resolves(raw: Json, at: str) -> bool:
    """Whether the container the pointer ends in exists in ``raw``."""
    node = raw
    parts = [p.replace("~1", "/").replace("~0", "~") for p in at.split("/")[1:]]
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def outcome(raw: Json) -> Case | list[FieldError]:
    """The case, or the errors; any other exception escapes and fails the test."""
    try:
        return normalise(raw)
    except InvalidReport as refused:
        return refused.errors


def check_outcome(raw: Json) -> None:
    result = outcome(raw)
    if isinstance(result, Case):
        assert Case.model_validate_json(result.model_dump_json()) == result
        return
    assert result
    pointers = [e.pointer for e in result]
    assert len(pointers) == len(set(pointers))
    for error in result:
        assert JSON_POINTER.fullmatch(error.pointer), error.pointer
        assert _resolves(raw, error.pointer), error.pointer
        assert error.detail


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_is_refused_cleanly(raw: Json) -> None:
    check_outcome(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_reports())
def test_mutated_reports_are_accepted_or_refused_cleanly(raw: Json) -> None:
    check_outcome(raw)


# Strings from an alphabet no detail uses, so any occurrence in a detail is an echo.
odd_strings = st.text(alphabet="#@$%^&*§¤¶ÆØ", min_size=1, max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 10_000), odd_strings), min_size=1, max_size=5),
)
def test_no_detail_echoes_a_submitted_string(
    fixture: str, replacements: list[tuple[int, str]]
) -> None:
    raw = load(fixture)
    for index, value in replacements:
        paths = list(_paths(raw))
        *parents, last = paths[index % len(paths)]
        node = raw
        for part in parents:
            node = node[part]
        node[last] = value
    submitted = {value for _, value in replacements}
    result = outcome(raw)
    for error in result if isinstance(result, list) else []:
        assert not any(value in error.detail for value in submitted), error.pointer


# --- per-field length limits ---------------------------------------------------------


def _string_limits(schema: Json, defs: Json, at: str = "") -> Iterator[tuple[str, int | None]]:
    """``(pointer pattern, maxLength)`` of every free-text string field; list items as ``*``."""
    while "$ref" in schema or "anyOf" in schema:
        if "$ref" in schema:
            schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
        else:
            schema = next(b for b in schema["anyOf"] if b.get("type") != "null")
    if schema.get("type") == "object":
        for name, prop in schema.get("properties", {}).items():
            yield from _string_limits(prop, defs, f"{at}/{name}")
    elif schema.get("type") == "array":
        yield from _string_limits(schema["items"], defs, f"{at}/*")
    elif schema.get("type") == "string" and "enum" not in schema and "const" not in schema:
        yield at, schema.get("maxLength")


def _inbound_limits() -> dict[str, int | None]:
    from contracts.si_lacak_perak import LaporanSiLacakPerak

    schema = LaporanSiLacakPerak.model_json_schema()
    return dict(_string_limits(schema, schema.get("$defs", {})))


def _full_report() -> Json:
    """valid-01 with every optional string field of the contract filled in."""
    raw = load("valid-01-app-basic.json")
    raw["pelapor"]["id_kader"] = "KADER-0042"
    raw["korban"][0]["nik"] = "3671114107970001"
    raw["korban"][0]["tanggal_lahir"] = "1997-07-01"
    raw["lampiran"] = [
        {"url": "https://x.example/1.jpg", "jenis": "image/jpeg", "sha256": "a" * 64}
    ]
    return raw


def test_every_string_field_of_the_inbound_contract_has_a_length_limit() -> None:
    limits = _inbound_limits()
    assert len(limits) >= 20
    assert [field for field, limit in limits.items() if limit is None] == []
    assert limits["/kronologi"] == 5000
    assert limits["/korban/*/nik"] == 16


def test_a_string_one_over_its_field_limit_is_refused_naming_that_field() -> None:
    limits = _inbound_limits()
    full = _full_report()
    normalise(full)
    string_pointers = [p for p in string_paths(full) if re.sub(r"/\d+(?=/|$)", "/*", p) in limits]
    assert len(string_pointers) == len(limits)
    for at in string_pointers:
        limit = limits[re.sub(r"/\d+(?=/|$)", "/*", at)]
        assert limit is not None
        raw = copy.deepcopy(full)
        set_at(raw, at, "ж" * (limit + 1))
        errors = errors_of(raw)
        assert [e.pointer for e in errors] == [at]
        assert f"at most {limit} characters" in errors[0].detail
        assert "ж" not in errors[0].detail
