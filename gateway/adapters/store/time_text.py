"""Times as the store keeps them: ISO text in UTC, microseconds always written, so that
text order is time order on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime


def to_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("the store keeps aware datetimes only")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def opt_text(moment: datetime | None) -> str | None:
    return None if moment is None else to_text(moment)


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


def opt_from_text(text: str | None) -> datetime | None:
    return None if text is None else from_text(text)
