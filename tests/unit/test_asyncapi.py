"""The AsyncAPI document: committed and current, well-linked, and truthful per role."""

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.envelope import RecipientRole
from gateway.adapters.asyncapi import asyncapi_document, redacted_case_schema, render
from gateway.redaction import PROFILES

COMMITTED = Path(__file__).parents[2] / "contracts" / "asyncapi.json"


def test_the_committed_document_is_current() -> None:
    assert COMMITTED.exists(), "run `gateway export-schemas`: contracts/asyncapi.json is missing"
    assert COMMITTED.read_text(encoding="utf-8") == render(asyncapi_document()), (
        "contracts/asyncapi.json is stale: run `gateway export-schemas`"
    )


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_every_reference_resolves() -> None:
    document = json.loads(render(asyncapi_document()))

    refs = _refs(document)

    assert refs
    for ref in refs:
        _resolve(document, ref)


def test_it_is_asyncapi_3_with_the_topics_and_partner_channels() -> None:
    document = asyncapi_document()

    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {
        "case.created.{kecamatan}.{risk}",
        "sla.warning.{kecamatan}.{risk}",
        "sla.breached.{kecamatan}.{risk}",
        "{namespace}.partner.{agency}",
    } <= addresses
    for operation in document["operations"].values():
        assert operation["action"] in ("send", "receive")
    partner = document["channels"]["partnerQueue"]["messages"]
    assert {f"caseFor_{role.value}" for role in RecipientRole} <= set(partner)


def _paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for name, prop in schema.get("properties", {}).items():
        path = prefix + name
        found.add(path)
        inner = prop
        if inner.get("type") == "array":
            path += "[]"
            inner = inner["items"]
        for branch in [inner, *inner.get("anyOf", [])]:
            if "properties" in branch:
                found |= _paths(branch, path + ".")
    return found


@pytest.mark.parametrize("role", list(RecipientRole))
def test_each_roles_content_schema_is_its_redaction_profile(role: RecipientRole) -> None:
    paths = _paths(redacted_case_schema(role))

    leaves = {p for p in paths if not any(q.startswith((p + ".", p + "[].")) for q in paths)}
    profile = set(PROFILES[role])
    # every leaf lies in the profile, and every profile entry is in the schema
    assert all(
        any(leaf == p or leaf.startswith((p + ".", p + "[].")) for p in profile) for leaf in leaves
    )
    assert all(p.replace("[]", "") in {q.replace("[]", "") for q in paths} for p in profile)


def test_the_dashboard_schema_has_no_place_finer_than_kecamatan() -> None:
    schema = redacted_case_schema(RecipientRole.DASHBOARD)

    assert set(schema["properties"]["location"]["properties"]) == {"kecamatan"}
    assert "reporter" not in schema["properties"]
    assert "narrative" not in schema["properties"]
