"""The sample reports and what counts as personal data in them."""

import base64
import json
import secrets
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


VALID_SAMPLES = sorted(p.name for p in FIXTURES.glob("valid-*.json"))
INVALID_SAMPLES = sorted(p.name for p in FIXTURES.glob("invalid-*.json"))


def personal_strings() -> set[str]:
    """Every name, phone, NIK, address and narrative in the fixture reports, in the
    forms they could leak in (as given, digits only, E.164)."""
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
    return found
