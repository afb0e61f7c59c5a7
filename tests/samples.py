"""The sample reports and what counts as personal data in them."""

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.case import Case
from gateway.adapters.sealing import Sealer
from gateway.model import AcceptedReport

FIXTURES = Path(__file__).parent / "fixtures"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


TEST_DATA_KEYS = "test1:" + base64.b64encode(hashlib.sha256(b"test data key 1").digest()).decode()
"""GATEWAY_DATA_KEYS of the tests: one fixed key, so a store can be reopened."""


def sealer_for_test() -> Sealer:
    return Sealer.from_setting(TEST_DATA_KEYS)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


VALID_SAMPLES = sorted(p.name for p in FIXTURES.glob("valid-*.json"))
INVALID_SAMPLES = sorted(p.name for p in FIXTURES.glob("invalid-*.json"))


def personal_strings() -> set[str]:
    """Every name, phone, NIK, address and narrative in the fixture reports, in the
    forms they could leak in (as given, digits only, E.164), that a scan can look for."""
    found: set[str] = set()
    keys = {"nama", "no_hp", "nik", "kronologi", "alamat", "patokan", "luka", "id_kader"}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in keys and isinstance(item, str) and len(item) >= 4:
                    found.add(item)
                    digits = "".join(c for c in item if c.isdigit())
                    if key == "no_hp" and len(digits) >= 8:
                        found.add(digits[-9:])
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for name in VALID_SAMPLES + INVALID_SAMPLES:
        walk(fixture_json(name))
    # A short run of digits ("12345", an invalid phone of a fixture, refused as one) also
    # turns up by chance in hashes, ids, ports and counts: a scan for it raises false alarms.
    return {s for s in found if not (s.isdigit() and len(s) < 8)}


def valid_01_case(*, share_victim_data: bool = True, **changes: Any) -> Case:
    """tests/fixtures/valid-01-app-basic.json as the normaliser should make it."""
    case = Case.model_validate(
        {
            "case_id": "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A",
            "source": {
                "system": "si-lacak-perak",
                "channel": "app",
                "reference": "SLP-20261130-0001",
            },
            "received_at": datetime(2026, 11, 30, 6, 45, 10, 398000, tzinfo=UTC),
            "reported_at": "2026-11-30T06:45:10Z",
            "violence_forms": ["physical", "psychological"],
            "risk": {
                "level": "high",
                "immediate_danger": True,
                "perpetrator_present": True,
                "weapon": False,
                "injury": True,
                "child_involved": True,
                "disability": False,
                "pregnancy": False,
            },
            "needs_other_agencies": True,
            "requested_agencies": ["police"],
            "location": {
                "kecamatan": {"code": "36.71.11", "name": "Pinang"},
                "kelurahan": {"code": "36.71.11.1002", "name": "Sudimara Pinang"},
                "address": "Jl. Melati No. 12",
                "rt": "003",
                "rw": "005",
                "landmark": "dekat masjid",
                "point": {"lat": -6.2301, "lon": 106.6612, "accuracy_m": 15},
            },
            "place_category": "household",
            "narrative": "Pelapor mendengar teriakan dari rumah korban.",
            "reporter": {
                "name": "Siti Rahmawati",
                "phone": "+6281200007801",
                "relation": "tetangga",
                "role": "neighbour",
                "anonymous": False,
            },
            "callback": {"phone": "+6281200007801", "role": "neighbour"},
            "victims": [
                {
                    "name": "Dewi Lestari",
                    "nik": "3671114107970001",
                    "sex": "female",
                    "age": 29,
                    "age_band": "25-34",
                    "is_child": False,
                    "phone": "+6281200007802",
                    "disability": False,
                    "pregnant": False,
                    "injuries": "memar di lengan kiri",
                }
            ],
            "perpetrators": [
                {
                    "name": "Budi Santoso",
                    "sex": "male",
                    "age": 33,
                    "age_band": "25-34",
                    "relationship": "husband",
                    "present": True,
                    "armed": False,
                }
            ],
            "attachments": [{"url": "https://silacakperak.example/lampiran/1.jpg"}],
            "consent": {"share_victim_data": share_victim_data},
        }
    )
    return case.model_copy(update=changes)


def string_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """The JSON pointer of every string in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from string_paths(item, f"{prefix}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_paths(item, f"{prefix}/{index}")
    elif isinstance(value, str):
        yield prefix


def set_at(document: Any, pointer: str, value: Any) -> None:
    """Put ``value`` at ``pointer`` (which exists) in a JSON document."""
    *parents, last = pointer.split("/")[1:]
    node = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def sealed_report(reference: str) -> AcceptedReport:
    """An accepted report whose case and raw bytes hold personal data to seal; the
    ``reference`` (four characters of Crockford base 32) makes the case its own."""
    case = valid_01_case(case_id=f"urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B{reference}")
    return AcceptedReport(
        source_system="si-lacak-perak",
        source_reference=f"SLP-{reference}",
        raw=json.dumps({"nama": case.victims[0].name}).encode(),
        case=case,
        outgoing=(),
    )
