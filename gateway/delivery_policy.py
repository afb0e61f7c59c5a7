"""What a push result means, and when to try again.

Pure: no I/O, no clock reads — ``now`` and the randomness are passed in.

``classify`` turns one push result into a verdict: delivered, retry (408, 425, 429,
5xx, timeouts, connection errors), park (any other non-2xx) or gone (410).
``next_delay`` spaces retries: fast, jittered seconds while a deadline is still ahead,
then the fixed retry ladder, its last step repeating forever — a message is never
dropped because a retry budget ran out.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from gateway.errors import DeliveryError, PermanentDeliveryError, SubscriptionGone
from gateway.model import PushResponse

RETRY_AFTER_CAP_S = 3600.0
REASON_BODY_CHARS = 200
RETRYABLE_STATUSES = frozenset({408, 425, 429})
GONE_STATUS = 410

FAST_BASE_S = 1.0
FAST_CAP_S = 15.0
FAST_ATTEMPTS_WITHOUT_DEADLINE = 3


@dataclass(frozen=True, slots=True)
class Delivered:
    pass


@dataclass(frozen=True, slots=True)
class Retry:
    delay_hint_s: float | None
    error_class: str


@dataclass(frozen=True, slots=True)
class Park:
    reason: str
    error_class: str


@dataclass(frozen=True, slots=True)
class Gone:
    reason: str
    error_class: str = f"http_{GONE_STATUS}"


Verdict = Delivered | Retry | Park | Gone


def classify(
    response: PushResponse | None, error: DeliveryError | None, *, now: datetime
) -> Verdict:
    """The verdict on one push: a response from the recipient, or the error instead of one.

    ``now`` turns an HTTP-date ``Retry-After`` into seconds.
    """
    if response is not None:
        return _classify_status(response, now)
    if error is None:
        raise ValueError("classify needs a response or an error")
    if isinstance(error, SubscriptionGone):
        return Gone(reason=str(error), error_class=error.error_class)
    if isinstance(error, PermanentDeliveryError):
        return Park(reason=str(error)[:REASON_BODY_CHARS], error_class=error.error_class)
    hint = None if error.retry_after_s is None else _capped(error.retry_after_s)
    return Retry(delay_hint_s=hint, error_class=error.error_class)


def _classify_status(response: PushResponse, now: datetime) -> Verdict:
    status = response.status
    error_class = f"http_{status}"
    if 200 <= status <= 299:
        return Delivered()
    if status in RETRYABLE_STATUSES or 500 <= status <= 599:
        header = _header(response.headers, "retry-after")
        hint = None if header is None else parse_retry_after(header, now=now)
        return Retry(delay_hint_s=hint, error_class=error_class)
    reason = f"{error_class}: {response.body_head[:REASON_BODY_CHARS]}"
    if status == GONE_STATUS:
        return Gone(reason=reason, error_class=error_class)
    return Park(reason=reason, error_class=error_class)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def parse_retry_after(value: str, *, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` value asks for (delta-seconds or HTTP-date), capped at 1 h.

    ``None`` when the value is neither; a date in the past asks for 0 s.
    """
    value = value.strip()
    if value.isdigit():
        return _capped(float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _capped((when - now).total_seconds())


def _capped(seconds: float) -> float:
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def next_delay(
    attempt: int,
    *,
    now: datetime,
    deadline_at: datetime | None,
    ladder: Sequence[int],
    rand: Callable[[], float],
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (counting from 1).

    Before ``deadline_at``: 1 s, 2 s, 4 s … capped at 15 s, with equal jitter, never
    reaching past the deadline. After it: the ladder step matching how long the
    deadline is overdue, as if the ladder had been walked since the deadline.
    Without a deadline: fast for the first few attempts, then one ladder step per
    attempt. The last ladder step repeats forever. ``rand`` answers in [0, 1).
    """
    if attempt < 1:
        raise ValueError("attempts count from 1")
    if not ladder:
        raise ValueError("the retry ladder needs at least one step")
    if deadline_at is None:
        if attempt <= FAST_ATTEMPTS_WITHOUT_DEADLINE:
            return _fast_delay(attempt, rand)
        index = attempt - FAST_ATTEMPTS_WITHOUT_DEADLINE - 1
        return float(ladder[min(index, len(ladder) - 1)])
    remaining_s = (deadline_at - now).total_seconds()
    if remaining_s > 0:
        return min(_fast_delay(attempt, rand), remaining_s)
    return float(_ladder_step_after(-remaining_s, ladder))


def _fast_delay(attempt: int, rand: Callable[[], float]) -> float:
    ceiling = min(FAST_CAP_S, FAST_BASE_S * 2.0 ** min(attempt - 1, 32))
    return ceiling / 2 + rand() * ceiling / 2


def _ladder_step_after(overdue_s: float, ladder: Sequence[int]) -> int:
    walked_s = 0
    for step in ladder[:-1]:
        walked_s += step
        if overdue_s < walked_s:
            return step
    return ladder[-1]


def choose_retry_queue(delay_s: float, ladder: Sequence[int]) -> int:
    """The ladder step that serves a wanted delay: the smallest one that is long enough,
    else the longest."""
    if not ladder:
        raise ValueError("the retry ladder needs at least one step")
    for step in sorted(ladder):
        if step >= delay_s:
            return step
    return max(ladder)
