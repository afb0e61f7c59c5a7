import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import valid_01_case

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
from contracts.envelope import RecipientRole
from contracts.sensitivity import Sensitivity
from gateway.redaction import FIELD_SENSITIVITY, PROFILES, redact_case, sensitivity_of

S0, S1, S2, S3 = Sensitivity.S0, Sensitivity.S1, Sensitivity.S2, Sensitivity.S3
C112, POLICE, HEALTH = RecipientRole.C112, RecipientRole.POLICE, RecipientRole.HEALTH
SOCIAL, SHELTER, DASHBOARD = RecipientRole.SOCIAL, RecipientRole.SHELTER, RecipientRole.DASHBOARD

FIXTURES = Path(__file__).parent.parent / "fixtures" / "c112"

# ARCHITECTURE.md §4, written out independently of gateway.redaction.PROFILES.
S3_CLEARED: dict[RecipientRole, frozenset[str]] = {
    C112: frozenset(),
    POLICE: frozenset({"victims[].name", "perpetrators[].name", "victims[].phone"}),
    HEALTH: frozenset({"victims[].age", "victims[].injuries"}),
    SOCIAL: frozenset({"victims[].phone"}),
    SHELTER: frozenset({"victims[].phone"}),
    DASHBOARD: frozenset(),
}
EXACT_LOCATION_AND_CALLBACK = frozenset(
    {
        "location.address",
        "location.rt",
        "location.rw",
        "location.landmark",
        "location.point",
        "location.point.lat",
        "location.point.lon",
        "location.point.accuracy_m",
        "callback",
        "callback.phone",
    }
)
S2_CLEARED: dict[RecipientRole, frozenset[str]] = {
    C112: EXACT_LOCATION_AND_CALLBACK,
    POLICE: EXACT_LOCATION_AND_CALLBACK,
    HEALTH: EXACT_LOCATION_AND_CALLBACK,
    SOCIAL: frozenset(),
    SHELTER: frozenset(),
    DASHBOARD: frozenset(),
}
NOBODY_GETS = ("reporter", "narrative", "attachments", "victims[].nik")


def fixture_content(name: str) -> dict[str, Any]:
    content: dict[str, Any] = json.loads((FIXTURES / name).read_text())["content"]
    return content


def with_parsed_times(content: dict[str, Any]) -> dict[str, Any]:
    """The fixtures write milliseconds, pydantic microseconds: compare instants, not strings."""
    return {
        key: datetime.fromisoformat(value) if key in ("received_at", "reported_at") else value
        for key, value in content.items()
    }


def leaf_paths(value: Any, path: str = "") -> set[str]:
    """The field paths of every value present, in profile notation; empty containers hold none."""
    if isinstance(value, dict):
        return {
            leaf
            for key, item in value.items()
            for leaf in leaf_paths(item, f"{path}.{key}" if path else key)
        }
    if isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            return {path} if value else set()
        return {leaf for item in value for leaf in leaf_paths(item, path + "[]")}
    return {path}


def test_c112_content_matches_the_illustration() -> None:
    expected = fixture_content("push-case-to-112.json")
    # The illustration predates the disability and pregnancy risk flags; 112 gets all
    # risk flags, so they are added here and the rest is compared as written.
    expected["risk"] |= {"disability": False, "pregnancy": False}

    content = redact_case(valid_01_case(), C112)

    assert with_parsed_times(content) == with_parsed_times(expected)


def test_dashboard_content_matches_the_illustration() -> None:
    expected = fixture_content("push-case-to-dashboard.json")

    content = redact_case(valid_01_case(), DASHBOARD)

    assert with_parsed_times(content) == with_parsed_times(expected)


@pytest.mark.parametrize(
    ("role", "path", "present"),
    [
        (C112, "callback.phone", True),
        (C112, "location.point.lat", True),
        (C112, "location.landmark", True),
        (C112, "risk.weapon", True),
        (C112, "perpetrators[].armed", True),
        (C112, "victims[].name", False),
        (C112, "victims[].phone", False),
        (C112, "perpetrators[].name", False),
        (C112, "perpetrators[].age", False),
        (POLICE, "victims[].name", True),
        (POLICE, "perpetrators[].name", True),
        (POLICE, "victims[].phone", True),
        (POLICE, "location.address", True),
        (POLICE, "victims[].injuries", False),
        (HEALTH, "victims[].injuries", True),
        (HEALTH, "victims[].age", True),
        (HEALTH, "victims[].pregnant", True),
        (HEALTH, "location.point.lon", True),
        (HEALTH, "callback.phone", True),
        (HEALTH, "perpetrators[].sex", False),
        (HEALTH, "victims[].name", False),
        (HEALTH, "victims[].phone", False),
        (SOCIAL, "victims[].disability", True),
        (SOCIAL, "victims[].phone", True),
        (SOCIAL, "location.kelurahan.code", True),
        (SOCIAL, "location.address", False),
        (SOCIAL, "callback.phone", False),
        (SOCIAL, "perpetrators[].relationship", False),
        (SOCIAL, "risk.weapon", False),
        (SHELTER, "victims[].pregnant", True),
        (SHELTER, "victims[].phone", True),
        (SHELTER, "location.point.lat", False),
        (DASHBOARD, "risk.level", True),
        (DASHBOARD, "location.kecamatan.code", True),
        (DASHBOARD, "location.kelurahan.code", False),
        (DASHBOARD, "risk.immediate_danger", False),
        (DASHBOARD, "source.reference", False),
        (DASHBOARD, "victims[].disability", False),
    ],
)
def test_role_receives(role: RecipientRole, path: str, present: bool) -> None:
    assert (path in leaf_paths(redact_case(valid_01_case(), role))) is present


@pytest.mark.parametrize("role", list(RecipientRole))
@pytest.mark.parametrize("path", NOBODY_GETS)
def test_nobody_receives(role: RecipientRole, path: str) -> None:
    received = leaf_paths(redact_case(valid_01_case(), role))

    assert not {leaf for leaf in received if leaf == path or leaf.startswith(path + ".")}


@pytest.mark.parametrize(
    ("role", "phone_sent"),
    [(C112, False), (POLICE, True), (HEALTH, False), (SOCIAL, False), (SHELTER, False)],
)
def test_without_consent_only_police_get_the_victims_phone(
    role: RecipientRole, phone_sent: bool
) -> None:
    content = redact_case(valid_01_case(share_victim_data=False), role)

    assert ("victims[].phone" in leaf_paths(content)) is phone_sent


def test_redaction_leaves_the_case_untouched() -> None:
    case = valid_01_case()
    before = case.model_dump()

    redact_case(case, DASHBOARD)["victims"][0]["sex"] = "male"

    assert case.model_dump() == before


@pytest.mark.parametrize(
    ("path", "sensitivity"),
    [
        ("received_at", S0),
        ("source.reference", S0),
        ("source", S1),  # holds the channel
        ("risk", S1),
        ("location.kecamatan", S1),
        ("location", S2),  # holds the address and point
        ("location.point", S2),
        ("location.point.lat", S2),
        ("callback", S2),
        ("reporter.role", S1),
        ("victims", S3),
        ("victims[].sex", S1),
        ("victims[].phone", S3),
        ("perpetrators[].armed", S1),
        ("attachments[].sha256", S0),
        ("narrative", S3),
    ],
)
def test_sensitivity_of(path: str, sensitivity: Sensitivity) -> None:
    assert sensitivity_of(path) is sensitivity


@pytest.mark.parametrize(
    "path", ["victims.sex", "victims[]", "location.kota", "risk.level.x", "", "nama"]
)
def test_sensitivity_of_an_unknown_path(path: str) -> None:
    with pytest.raises(ValueError, match="no field"):
        sensitivity_of(path)


def test_every_case_field_is_classified() -> None:
    top_level = {path for path in FIELD_SENSITIVITY if "." not in path}

    assert top_level == set(Case.model_fields)


def test_dashboard_profile_is_s0_or_s1_only() -> None:
    too_sensitive = {path for path in PROFILES[DASHBOARD] if sensitivity_of(path) not in (S0, S1)}

    assert not too_sensitive


def test_c112_profile_has_no_s3() -> None:
    assert not {path for path in PROFILES[C112] if sensitivity_of(path) is S3}


@pytest.mark.parametrize("role", list(RecipientRole))
def test_profile_clearance_follows_the_table(role: RecipientRole) -> None:
    s3 = {path for path in PROFILES[role] if sensitivity_of(path) is S3}
    s2 = {path for path in PROFILES[role] if sensitivity_of(path) is S2}

    assert s3 == S3_CLEARED[role]
    assert s2 <= S2_CLEARED[role]


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


_text = st.text(min_size=1, max_size=12)
_phone = st.integers(10**8, 10**11 - 1).map(lambda n: f"+628{n}")
_aware = st.datetimes(
    # hypothesis takes naive bounds; timezones= makes the values aware
    min_value=datetime(2020, 1, 1),  # noqa: DTZ001
    max_value=datetime(2040, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
_neighbourhood = st.integers(1, 30).map(lambda n: f"{n:03d}")
_age_band = st.sampled_from(["0-5", "6-12", "13-17", "18-24", "25-34", "35-44"])

cases = st.builds(
    Case,
    case_id=st.just("urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A"),
    source=st.builds(
        Source, system=st.just("si-lacak-perak"), channel=st.sampled_from(Channel), reference=_text
    ),
    received_at=_aware,
    reported_at=_aware,
    incident_type=st.just("kdrt"),
    violence_forms=st.lists(st.sampled_from(ViolenceForm), min_size=1, unique=True),
    risk=st.builds(
        Risk,
        level=st.sampled_from(RiskLevel),
        immediate_danger=st.booleans(),
        perpetrator_present=st.booleans(),
        weapon=st.booleans(),
        injury=st.booleans(),
        child_involved=st.booleans(),
        disability=st.booleans(),
        pregnancy=st.booleans(),
    ),
    needs_other_agencies=st.booleans(),
    requested_agencies=st.lists(st.sampled_from(Agency), unique=True),
    agency_request_reason=_optional(_text),
    location=st.builds(
        Location,
        kecamatan=st.builds(
            Area, code=st.integers(1, 13).map(lambda n: f"36.71.{n:02d}"), name=_text
        ),
        kelurahan=st.builds(
            Area, code=st.integers(1001, 1010).map(lambda n: f"36.71.01.{n}"), name=_text
        ),
        address=_optional(_text),
        rt=_optional(_neighbourhood),
        rw=_optional(_neighbourhood),
        landmark=_optional(_text),
        point=_optional(
            st.builds(
                Point,
                lat=st.floats(-90, 90),
                lon=st.floats(-180, 180),
                accuracy_m=_optional(st.floats(0, 5000)),
            )
        ),
    ),
    place_category=_optional(st.sampled_from(PlaceCategory)),
    narrative=_optional(_text),
    reporter=st.builds(
        Reporter,
        name=_optional(_text),
        phone=_optional(_phone),
        relation=_optional(_text),
        role=st.sampled_from(ReporterRole),
        cadre_id=_optional(_text),
        anonymous=st.booleans(),
    ),
    callback=_optional(st.builds(Callback, phone=_phone, role=st.sampled_from(ReporterRole))),
    victims=st.lists(
        st.builds(
            Victim,
            name=_optional(_text),
            nik=_optional(st.integers(10**15, 10**16 - 1).map(str)),
            sex=_optional(st.sampled_from(Sex)),
            age=_optional(st.integers(0, 130)),
            age_band=_optional(_age_band),
            is_child=_optional(st.booleans()),
            phone=_optional(_phone),
            disability=_optional(st.booleans()),
            pregnant=_optional(st.booleans()),
            injuries=_optional(_text),
        ),
        min_size=1,
        max_size=3,
    ),
    perpetrators=st.lists(
        st.builds(
            Perpetrator,
            name=_optional(_text),
            sex=_optional(st.sampled_from(Sex)),
            age=_optional(st.integers(0, 130)),
            age_band=_optional(_age_band),
            relationship=_optional(st.sampled_from(Relationship)),
            present=_optional(st.booleans()),
            armed=_optional(st.booleans()),
        ),
        max_size=3,
    ),
    attachments=st.lists(
        st.builds(
            Attachment,
            url=st.just("https://silacakperak.example/lampiran/x.jpg"),
            media_type=_optional(st.just("image/jpeg")),
            sha256=_optional(st.binary(min_size=32, max_size=32).map(bytes.hex)),
        ),
        max_size=2,
    ),
    consent=st.builds(Consent, share_victim_data=st.booleans()),
)


@settings(max_examples=200, deadline=None)
@given(case=cases, role=st.sampled_from(RecipientRole))
def test_no_role_receives_what_it_is_not_cleared_for(case: Case, role: RecipientRole) -> None:
    received = leaf_paths(redact_case(case, role))
    s3_cleared = S3_CLEARED[role]
    if not case.consent.share_victim_data and role is not POLICE:
        s3_cleared -= {"victims[].phone"}

    assert {p for p in received if FIELD_SENSITIVITY[p] is S3} <= s3_cleared
    assert {p for p in received if FIELD_SENSITIVITY[p] is S2} <= S2_CLEARED[role]
    assert not {p for p in received if p.startswith(NOBODY_GETS)}
    if role is DASHBOARD:
        assert {FIELD_SENSITIVITY[p] for p in received} <= {S0, S1}
        assert not {
            p
            for p in received
            if p.startswith(("location.kelurahan", "location.point", "location.address"))
        }
