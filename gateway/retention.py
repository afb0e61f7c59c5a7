"""What of a case may be kept without its personal data, and when that data goes.

``public_part`` is the case with every S2/S3 field at its default: the store keeps it in
plain text for the SLA report, the SIMFONI export and ops, and keeps the whole case
sealed beside it until the retention purge drops the sealed copy. Sensitivity classes
come from the ``x-sensitivity`` markers of the contracts.
"""

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from contracts.case import Case
from contracts.sensitivity import SENSITIVITY_KEY, Sensitivity
from contracts.workflow import CaseEventRequest, CaseState

PERSONAL = frozenset({Sensitivity.S2, Sensitivity.S3})
ENDED_STATES = frozenset({CaseState.CLOSED, CaseState.CANCELLED, CaseState.DUPLICATE})
"""Cases in these states lose their personal data once they ended long enough ago."""


def _marker(info: FieldInfo) -> Sensitivity:
    extra = info.json_schema_extra
    if not isinstance(extra, Mapping) or SENSITIVITY_KEY not in extra:
        raise ValueError("a contract field without a sensitivity marker")
    return Sensitivity(str(extra[SENSITIVITY_KEY]))


class _Unkeepable(Exception):
    """A required field is personal: the object cannot exist without personal data."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    personal: bool
    required: bool
    info: FieldInfo

    def default(self) -> Any:
        # FieldInfo.get_default inspects the factory's signature on every call
        factory = self.info.default_factory
        return factory() if factory is not None else copy.deepcopy(self.info.default)  # type: ignore[call-arg]


@functools.cache
def _fields(model: type[BaseModel]) -> tuple[_Field, ...]:
    return tuple(
        _Field(name, _marker(info) in PERSONAL, info.is_required(), info)
        for name, info in model.model_fields.items()
    )


def _kept(value: Any, field: _Field) -> Any:
    if isinstance(value, BaseModel):
        return _stripped(value)
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return [_stripped(item) for item in value]
    if value is not None and field.personal:
        raise _Unkeepable
    return value


def _stripped(model: BaseModel) -> BaseModel:
    values: dict[str, Any] = {}
    for field in _fields(type(model)):
        try:
            values[field.name] = _kept(getattr(model, field.name), field)
        except _Unkeepable:
            if field.required:
                raise
            values[field.name] = field.default()
    # every value is the model's own or its field's default: nothing to validate again
    return type(model).model_construct(**values)


def public_part(case: Case) -> Case:
    """The case with only its S0/S1 fields: personal leaves emptied, objects that cannot
    exist without a personal field (a callback, an attachment, a map point) left out."""
    stripped = _stripped(case)
    assert isinstance(stripped, Case)  # noqa: S101 - _stripped keeps the type
    return stripped


def split_event_details(
    details: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A case event's details as (S0/S1 part, S2/S3 part), by the event contract's markers.
    A key the contract does not know counts as personal."""
    public: dict[str, Any] = {}
    personal: dict[str, Any] = {}
    fields = CaseEventRequest.model_fields
    for key, value in details.items():
        info = fields.get(key)
        if info is None or _marker(info) in PERSONAL:
            personal[key] = value
        else:
            public[key] = value
    return public, personal


def purge_cutoff(now: datetime, retention_days: int) -> datetime:
    """Cases that ended before this lose their personal data."""
    return now - timedelta(days=retention_days)
