import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from samples import VALID_SAMPLES, fixture_json, personal_strings, valid_01_case

from contracts.case import Case
from contracts.sensitivity import Sensitivity
from gateway.redaction import FIELD_SENSITIVITY
from gateway.retention import public_part, purge_cutoff, split_event_details
from gateway.si_lacak_perak import normalise_report

CASE_ID = "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A"
PERSONAL = {Sensitivity.S2, Sensitivity.S3}


def values_at(data: Any, path: str) -> list[Any]:
    nodes = [data]
    for part in path.split("."):
        name = part.removesuffix("[]")
        nodes = [n[name] for n in nodes if isinstance(n, dict) and n.get(name) is not None]
        if part.endswith("[]"):
            nodes = [item for n in nodes for item in n]
    return nodes


def cases() -> list[Case]:
    received = datetime(2026, 11, 30, 6, 45, tzinfo=UTC)
    made = [
        normalise_report(fixture_json(n), case_id=CASE_ID, received_at=received)
        for n in VALID_SAMPLES
    ]
    return [*made, valid_01_case()]


@pytest.mark.parametrize("case", cases())
def test_the_public_part_holds_no_personal_field(case: Case) -> None:
    kept = public_part(case).model_dump(mode="json")
    leaves = [
        path
        for path, marker in FIELD_SENSITIVITY.items()
        if marker in PERSONAL
        and not any(other.startswith((path + ".", path + "[].")) for other in FIELD_SENSITIVITY)
    ]
    assert "victims[].name" in leaves
    for path in leaves:
        assert values_at(kept, path) == [], path
    text = json.dumps(kept, ensure_ascii=False)
    assert [s for s in personal_strings() if s in text] == []


@pytest.mark.parametrize("case", cases())
def test_the_public_part_keeps_every_s0_s1_field_the_reports_use(case: Case) -> None:
    kept = public_part(case)
    assert kept.case_id == case.case_id
    assert kept.received_at == case.received_at
    assert kept.risk == case.risk
    assert kept.location.kecamatan == case.location.kecamatan
    assert kept.location.kelurahan == case.location.kelurahan
    assert kept.violence_forms == case.violence_forms
    assert kept.place_category == case.place_category
    assert [(v.sex, v.age_band, v.is_child) for v in kept.victims] == [
        (v.sex, v.age_band, v.is_child) for v in case.victims
    ]
    assert [p.relationship for p in kept.perpetrators] == [
        p.relationship for p in case.perpetrators
    ]
    assert kept.reporter.role == case.reporter.role
    assert kept.consent == case.consent


def test_objects_that_cannot_exist_without_personal_data_are_left_out() -> None:
    kept = public_part(valid_01_case())
    assert kept.callback is None
    assert kept.attachments == []
    assert kept.location.point is None
    assert kept.narrative is None


def test_event_details_are_split_by_the_event_contracts_markers() -> None:
    details = {
        "team_id": "tim-2",
        "documentation": ["berkas/berita-acara-12.pdf"],
        "report": {"victim_status": "safe", "services": ["medical"]},
        "unknown": "x",
    }
    public, personal = split_event_details(details)
    assert public == {"team_id": "tim-2", "report": details["report"]}
    assert personal == {"documentation": details["documentation"], "unknown": "x"}


def test_purge_cutoff() -> None:
    now = datetime(2027, 1, 31, tzinfo=UTC)
    assert purge_cutoff(now, 30) == now - timedelta(days=30)
