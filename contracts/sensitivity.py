"""Sensitivity classes and the field helper that records them in the schema."""

from enum import StrEnum
from typing import Any

from pydantic import Field


class Sensitivity(StrEnum):
    S0 = "S0"
    S1 = "S1"
    S2 = "S2"
    S3 = "S3"


SENSITIVITY_KEY = "x-sensitivity"


def classified(sensitivity: Sensitivity, default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic ``Field`` whose JSON Schema names its sensitivity class."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[SENSITIVITY_KEY] = sensitivity.value
    if "default_factory" in kwargs:
        return Field(json_schema_extra=extra, **kwargs)
    return Field(default, json_schema_extra=extra, **kwargs)
