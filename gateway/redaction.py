"""Redaction profiles: which fields of a case each recipient role may receive.

A profile is an allowlist of field paths over the dumped case (``case_id`` travels in
the envelope). A path names a field and everything beneath it; ``[]`` steps into the
items of a list: ``"victims[].sex"``, ``"location.kecamatan"``, ``"risk.level"``.
Anything not listed is left out. Sensitivity classes come from the ``x-sensitivity``
markers of the ``Case`` JSON Schema, so the table can be checked against them.
"""

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any, TypeAlias

from contracts.case import Case
from contracts.envelope import RecipientRole
from contracts.sensitivity import SENSITIVITY_KEY, Sensitivity

_CASE_HEADER = frozenset(
    {
        "source",
        "received_at",
        "reported_at",
        "incident_type",
        "violence_forms",
        "place_category",
    }
)
_AGENCY_REQUEST = frozenset({"requested_agencies", "agency_request_reason"})
_EXACT_LOCATION = frozenset(
    {
        "location.kecamatan",
        "location.kelurahan",
        "location.address",
        "location.rt",
        "location.rw",
        "location.landmark",
        "location.point",
    }
)
_VICTIM_PROFILE = frozenset({"victims[].sex", "victims[].age_band", "victims[].is_child"})
_VICTIM_NEEDS = _VICTIM_PROFILE | {"victims[].disability", "victims[].pregnant"}
_PERPETRATOR_CONDUCT = frozenset(
    {
        "perpetrators[].sex",
        "perpetrators[].relationship",
        "perpetrators[].present",
        "perpetrators[].armed",
    }
)

_C112 = (
    _CASE_HEADER
    | _AGENCY_REQUEST
    | _EXACT_LOCATION
    | _VICTIM_PROFILE
    | _PERPETRATOR_CONDUCT
    | {"risk", "callback"}
)
_SOCIAL_SERVICES = (
    _CASE_HEADER
    | _VICTIM_NEEDS
    | {"risk.level", "location.kecamatan", "location.kelurahan", "victims[].phone"}
)

PROFILES: Mapping[RecipientRole, frozenset[str]] = MappingProxyType(
    {
        RecipientRole.C112: _C112,
        RecipientRole.POLICE: _C112 | {"victims[].name", "victims[].phone", "perpetrators[].name"},
        RecipientRole.HEALTH: (
            _CASE_HEADER
            | _AGENCY_REQUEST
            | _EXACT_LOCATION
            | _VICTIM_NEEDS
            | {"risk", "callback", "victims[].age", "victims[].injuries"}
        ),
        RecipientRole.SOCIAL: _SOCIAL_SERVICES,
        RecipientRole.SHELTER: _SOCIAL_SERVICES,
        RecipientRole.DASHBOARD: _VICTIM_PROFILE
        | {
            "received_at",
            "incident_type",
            "violence_forms",
            "place_category",
            "requested_agencies",
            "risk.level",
            "location.kecamatan",
        },
    }
)

# Withheld when the victim has not consented to sharing their data, except from police.
CONSENT_GATED: frozenset[str] = frozenset({"victims[].phone"})
CONSENT_EXEMPT: frozenset[RecipientRole] = frozenset({RecipientRole.POLICE})

_ORDER = tuple(Sensitivity)


def _field_sensitivity() -> dict[str, Sensitivity]:
    """The ``x-sensitivity`` marker of every field path of the case schema."""
    schema = Case.model_json_schema(mode="serialization")
    defs: dict[str, Any] = schema.get("$defs", {})
    table: dict[str, Sensitivity] = {}

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while True:
            if "$ref" in node:
                node = defs[node["$ref"].rsplit("/", 1)[-1]]
            elif "anyOf" in node or "allOf" in node:
                branches = node.get("anyOf") or node["allOf"]
                node = next(b for b in branches if b.get("type") != "null")
            else:
                return node

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, prop in properties.items():
            path = prefix + name
            if SENSITIVITY_KEY not in prop:
                raise ValueError(f"case field {path!r} has no {SENSITIVITY_KEY} marker")
            table[path] = Sensitivity(prop[SENSITIVITY_KEY])
            target = resolve(prop)
            if target.get("type") == "array":
                path += "[]"
                target = resolve(target["items"])
            if "properties" in target:
                walk(target["properties"], path + ".")

    walk(schema["properties"], "")
    return table


FIELD_SENSITIVITY: Mapping[str, Sensitivity] = MappingProxyType(_field_sensitivity())
"""Every field path of the case and its own marker (not counting the fields beneath it)."""


def sensitivity_of(path: str) -> Sensitivity:
    """What a recipient allowed ``path`` is exposed to: the highest class at or beneath it.

    Raises ``ValueError`` for a path the case does not have.
    """
    if path not in FIELD_SENSITIVITY:
        raise ValueError(f"the case has no field {path!r}")
    covered = (
        marker
        for field, marker in FIELD_SENSITIVITY.items()
        if field == path or field.startswith((path + ".", path + "[]."))
    )
    return max(covered, key=_ORDER.index)


_Tree: TypeAlias = dict[str, "_Tree | None"]
"""An allowlist as a tree of field names; ``None`` keeps the whole subtree."""


@lru_cache(maxsize=32)
def _tree(paths: frozenset[str]) -> _Tree:
    root: _Tree = {}
    for path in sorted(paths, key=lambda p: p.count(".")):
        node: _Tree | None = root
        *parents, leaf = (segment.removesuffix("[]") for segment in path.split("."))
        for name in parents:
            if node is None:
                break
            node = node.setdefault(name, {})
        if node is not None:
            node[leaf] = None
    return root


def _keep(data: dict[str, Any], tree: _Tree) -> dict[str, Any]:
    return {name: _keep_value(data[name], sub) for name, sub in tree.items() if name in data}


def _keep_value(value: Any, tree: _Tree | None) -> Any:
    if tree is None:
        return value
    if isinstance(value, list):
        return [_keep_value(item, tree) for item in value]
    if isinstance(value, dict):
        return _keep(value, tree)
    raise TypeError(f"a redaction path steps into a {type(value).__name__}")


def allowed_paths(case: Case, role: RecipientRole) -> frozenset[str]:
    """The role's profile narrowed by the case's consent."""
    paths = PROFILES[role]
    if not case.consent.share_victim_data and role not in CONSENT_EXEMPT:
        paths -= CONSENT_GATED
    return paths


def redact_case(case: Case, role: RecipientRole) -> dict[str, Any]:
    """The case as ``role`` may see it, ready for JSON. Absent optional fields are left out."""
    data = case.model_dump(mode="json", exclude={"case_id"}, exclude_none=True)
    return _keep(data, _tree(allowed_paths(case, role)))


def _check_profiles() -> None:
    for role, paths in PROFILES.items():
        unknown = sorted(path for path in paths if path not in FIELD_SENSITIVITY)
        if unknown:
            raise ValueError(f"redaction profile {role} names unknown case fields: {unknown}")


_check_profiles()


def redact_paths(case: Case, paths: frozenset[str]) -> dict[str, Any]:
    """The case cut to an allowlist of field paths (as in ``PROFILES``), for views that are
    not a recipient role (the ops view of a case)."""
    unknown = sorted(path for path in paths if path not in FIELD_SENSITIVITY)
    if unknown:
        raise ValueError(f"the case has no fields {unknown}")
    data = case.model_dump(mode="json", exclude={"case_id"}, exclude_none=True)
    return _keep(data, _tree(paths))
