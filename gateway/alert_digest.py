"""Ops alerts summed up: when many messages go at risk together (112 down), one summary
per alert kind and recipient per window, with how many, rather than only a flood of
single alerts. Pure: the caller says what happened when, and logs what comes out."""

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class AlertSummary:
    alert: str
    recipient: str
    count: int
    first_at: datetime
    last_at: datetime


@dataclass(slots=True)
class _Open:
    count: int
    first_at: datetime
    last_at: datetime


class AlertDigest:
    """Counts alerts by (alert, recipient); a key's summary is due one ``window`` after
    its first alert since the last summary, so a key has at most one summary a window."""

    def __init__(self, window: timedelta) -> None:
        if window <= timedelta(0):
            raise ValueError("the window must be positive")
        self._window = window
        self._open: dict[tuple[str, str], _Open] = {}

    def add(self, alert: str, recipient: str, at: datetime) -> None:
        pending = self._open.get((alert, recipient))
        if pending is None:
            self._open[(alert, recipient)] = _Open(1, at, at)
        else:
            pending.count += 1
            pending.last_at = max(pending.last_at, at)

    def due(self, now: datetime) -> list[AlertSummary]:
        """The summaries whose window has passed by ``now``; each is given once."""
        ready = [
            key for key, pending in self._open.items() if now >= pending.first_at + self._window
        ]
        summaries = []
        for key in ready:
            pending = self._open.pop(key)
            summaries.append(
                AlertSummary(key[0], key[1], pending.count, pending.first_at, pending.last_at)
            )
        return summaries
