"""Source times and ages. Kota Tangerang is on WIB (UTC+7); a source time without offset is WIB."""

import re
from datetime import UTC, date, datetime, timedelta, timezone

WIB = timezone(timedelta(hours=7), "WIB")
CHILD_AGE_LIMIT = 18

_HAS_TIME_OF_DAY = re.compile(r"[0-9][Tt ][0-9]")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_AGE_BANDS: tuple[tuple[int, str], ...] = (
    (5, "0-5"),
    (12, "6-12"),
    (17, "13-17"),
    (24, "18-24"),
    (34, "25-34"),
    (44, "35-44"),
    (59, "45-59"),
)


def to_utc(raw: str) -> datetime:
    """ISO 8601 (or ``YYYY-MM-DD HH:MM:SS``) date and time → aware UTC ``datetime``.

    Raises ``ValueError`` when ``raw`` is not a date with a time of day.
    """
    text = raw.strip()
    if not _HAS_TIME_OF_DAY.search(text):
        raise ValueError("not a date and time")
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=WIB)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("not an ISO 8601 date and time") from None


def to_date(raw: str) -> date:
    """``YYYY-MM-DD`` → ``date``; ``ValueError`` otherwise."""
    text = raw.strip()
    if not _DATE.fullmatch(text):
        raise ValueError("not a YYYY-MM-DD date")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError("not a calendar date") from None


def age_at(born: date, at: datetime) -> int:
    """Completed years from ``born`` to the WIB day of ``at`` (negative before birth)."""
    today = at.astimezone(WIB).date()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def age_band(age: int) -> str:
    """The reporting band of an age in years: 0-5, 6-12, 13-17, 18-24, 25-34, 35-44, 45-59, 60+."""
    if age < 0:
        raise ValueError("an age cannot be negative")
    for upper, band in _AGE_BANDS:
        if age <= upper:
            return band
    return "60+"


def is_child(age: int) -> bool:
    return age < CHILD_AGE_LIMIT
