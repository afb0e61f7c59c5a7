"""What the 112 command center posts back to ``/v1/c112/receipts``."""

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ReceiptStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ReceiptBy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(max_length=64)
    id: str | None = Field(default=None, max_length=64)


class Receipt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    distribution_id: str = Field(max_length=64)
    status: ReceiptStatus
    at: AwareDatetime
    by: ReceiptBy | None = None
    ticket: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=500)
