"""A circuit breaker per recipient: stop pushing after repeated failures, probe, resume.

Pure: the time is passed in. CLOSED lets every push through and counts consecutive
failures; ``threshold`` of them open it. OPEN lets nothing through until its cool-down
has passed; then the first caller becomes the single probe (HALF_OPEN). The probe's
success closes it; its failure opens it again, for twice the cool-down before.

The first cool-down is ``first_cool_down_s`` (``cool_down_s`` when not given) and none
is longer than ``cool_down_s``: a recipient back after a short outage (a restart) is
found within seconds, one down for long is probed once every ``cool_down_s``.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    threshold: int
    cool_down_s: float
    first_cool_down_s: float | None = None
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: datetime | None = None
    open_for_s: float = field(default=0.0, init=False)  # the cool-down of this opening

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("the breaker threshold must be at least 1")
        first = self.first_cool_down_s
        if self.cool_down_s <= 0 or (first is not None and first <= 0):
            raise ValueError("the breaker cool-downs must be positive")

    def admits(self, now: datetime) -> bool:
        """Whether a push may go now; the first one after the cool-down is the probe."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and self.remaining_s(now) == 0:
            self.state = BreakerState.HALF_OPEN
            return True
        return False

    def succeeded(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = None
        self.open_for_s = 0.0

    def failed(self, now: datetime) -> bool:
        """Count a failed push; answers ``True`` when this failure opened the breaker."""
        self.failures += 1
        if self.state is BreakerState.OPEN:
            return False
        if self.state is BreakerState.HALF_OPEN:
            self.open_for_s = min(self.open_for_s * 2, self.cool_down_s)
        elif self.failures >= self.threshold:
            first = self.cool_down_s if self.first_cool_down_s is None else self.first_cool_down_s
            self.open_for_s = min(first, self.cool_down_s)
        else:
            return False
        self.state = BreakerState.OPEN
        self.opened_at = now
        return True

    def remaining_s(self, now: datetime) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return 0.0
        reopen_at = self.opened_at + timedelta(seconds=self.open_for_s)
        return max((reopen_at - now).total_seconds(), 0.0)
