"""RFC 9457 problem details, with the gateway's ``errors`` extension member."""

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pointer: str = Field(
        description="JSON Pointer (RFC 6901) to the wrong field in the request body."
    )
    detail: str = Field(description="A plain reason; never echoes the submitted value.")
    suggestions: list[str] | None = None


class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
