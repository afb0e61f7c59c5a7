"""What the ops console and its JSON API show: S0 data only (ids, times, codes)."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DeliveryLogEntry(BaseModel):
    """One delivery attempt."""

    model_config = ConfigDict(extra="forbid")

    log_id: int = Field(description="Cursor of the live tail; increases with every attempt.")
    at: datetime
    distribution_id: str
    case_id: str
    recipient: str
    attempt: int
    outcome: str = Field(examples=["delivered", "retry", "parked", "gone"])
    status_code: int | None = None
    error_class: str | None = None
    latency_ms: float | None = None
    next_try_at: datetime | None = None


class DeliveryLogPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[DeliveryLogEntry]
    last_id: int = Field(description="Pass as after_id to continue after these entries.")
