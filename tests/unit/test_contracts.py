"""The committed JSON Schemas match the contracts, and every case field is classified."""

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.case import Case
from contracts.export import render, schema_documents
from contracts.sensitivity import SENSITIVITY_KEY, Sensitivity

SCHEMA_DIR = Path(__file__).parents[2] / "contracts" / "schemas"


@pytest.mark.parametrize("name", sorted(schema_documents()))
def test_committed_schema_is_current(name: str) -> None:
    committed = SCHEMA_DIR / f"{name}.schema.json"
    assert committed.exists(), f"run `gateway export-schemas`: {committed.name} is missing"
    assert committed.read_text(encoding="utf-8") == render(schema_documents()[name]), (
        f"{committed.name} is stale: run `gateway export-schemas`"
    )


def test_no_stray_schema_files() -> None:
    expected = {f"{name}.schema.json" for name in schema_documents()}
    assert {p.name for p in SCHEMA_DIR.glob("*.json")} == expected


def _properties(schema: dict[str, Any], defs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, prop in schema.get("properties", {}).items():
        found.append((name, prop))
        for ref in _refs(prop):
            found.extend((f"{name}.{n}", p) for n, p in _properties(defs[ref], defs))
    return found


def _refs(prop: dict[str, Any]) -> list[str]:
    text = json.dumps(prop)
    return [part.split('"')[0] for part in text.split("#/$defs/")[1:]]


def test_every_case_field_names_its_sensitivity() -> None:
    schema = Case.model_json_schema()
    fields = _properties(schema, schema.get("$defs", {}))
    assert len(fields) > 50
    unclassified = [name for name, prop in fields if SENSITIVITY_KEY not in prop]
    assert unclassified == []
    assert {prop[SENSITIVITY_KEY] for _, prop in fields} == {s.value for s in Sensitivity}
