from datetime import UTC, datetime, timedelta

import pytest

from gateway.delivery_policy import (
    Delivered,
    Gone,
    Park,
    Retry,
    Verdict,
    choose_retry_queue,
    classify,
    next_delay,
    parse_retry_after,
)
from gateway.errors import (
    DeliveryError,
    PermanentDeliveryError,
    SubscriptionGone,
    TransientDeliveryError,
)
from gateway.model import PushResponse

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
LADDER = (5, 30, 120, 600)


def response(status: int, body: str = "", **headers: str) -> PushResponse:
    return PushResponse(status=status, latency_s=0.01, headers=headers, body_head=body)


@pytest.mark.parametrize(
    ("pushed", "expected"),
    [
        (response(200), Delivered()),
        (response(201), Delivered()),
        (response(204), Delivered()),
        (response(299), Delivered()),
        (response(408), Retry(None, "http_408")),
        (response(425), Retry(None, "http_425")),
        (response(429), Retry(None, "http_429")),
        (response(500), Retry(None, "http_500")),
        (response(502), Retry(None, "http_502")),
        (response(503), Retry(None, "http_503")),
        (response(599), Retry(None, "http_599")),
        (response(503, **{"Retry-After": "7"}), Retry(7.0, "http_503")),
        (response(429, **{"retry-after": " 120 "}), Retry(120.0, "http_429")),
        (response(429, **{"RETRY-AFTER": "86400"}), Retry(3600.0, "http_429")),
        (
            response(503, **{"Retry-After": "Tue, 04 Mar 2025 05:06:37 GMT"}),
            Retry(30.0, "http_503"),
        ),
        (response(503, **{"Retry-After": "soon"}), Retry(None, "http_503")),
        (response(410, "unsubscribed"), Gone("http_410: unsubscribed")),
        (response(400, "bad field"), Park("http_400: bad field", "http_400")),
        (response(401), Park("http_401: ", "http_401")),
        (response(404, "x" * 500), Park("http_404: " + "x" * 200, "http_404")),
        (response(422, "schema"), Park("http_422: schema", "http_422")),
        (response(301, "moved"), Park("http_301: moved", "http_301")),
    ],
)
def test_classify_response(pushed: PushResponse, expected: Verdict) -> None:
    assert classify(pushed, None, now=NOW) == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TransientDeliveryError("timeout"), Retry(None, "timeout")),
        (TransientDeliveryError("connection", "refused"), Retry(None, "connection")),
        (TransientDeliveryError("http_503", retry_after_s=12.5), Retry(12.5, "http_503")),
        (TransientDeliveryError("http_503", retry_after_s=99999), Retry(3600.0, "http_503")),
        (DeliveryError("tls"), Retry(None, "tls")),
        (PermanentDeliveryError("http_400", "bad"), Park("http_400: bad", "http_400")),
        (SubscriptionGone("http_410"), Gone("http_410", "http_410")),
    ],
)
def test_classify_error(error: DeliveryError, expected: Verdict) -> None:
    assert classify(None, error, now=NOW) == expected


def test_classify_prefers_the_response_over_the_error() -> None:
    assert classify(response(200), TransientDeliveryError("timeout"), now=NOW) == Delivered()


def test_classify_needs_something_to_classify() -> None:
    with pytest.raises(ValueError, match="response or an error"):
        classify(None, None, now=NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("45", 45.0),
        ("3600", 3600.0),
        ("3601", 3600.0),
        ("Tue, 04 Mar 2025 05:07:07 GMT", 60.0),
        ("Tue, 04 Mar 2025 05:07:07 -0000", 60.0),
        ("Tue, 04 Mar 2025 12:07:07 +0700", 60.0),
        ("Tue, 04 Mar 2025 05:00:00 GMT", 0.0),
        ("Wed, 05 Mar 2025 05:06:07 GMT", 3600.0),
        ("-5", None),
        ("1.5", None),
        ("", None),
        ("tomorrow", None),
    ],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


IN_5_MIN = NOW + timedelta(minutes=5)
IN_3_S = NOW + timedelta(seconds=3)


@pytest.mark.parametrize(
    ("attempt", "deadline_at", "rand", "expected"),
    [
        # ahead of the deadline: 1, 2, 4, 8, 15 s ceilings with equal jitter
        (1, IN_5_MIN, 0.0, 0.5),
        (1, IN_5_MIN, 0.999, 0.9995),
        (2, IN_5_MIN, 0.0, 1.0),
        (3, IN_5_MIN, 0.5, 3.0),
        (4, IN_5_MIN, 1.0, 8.0),
        (5, IN_5_MIN, 1.0, 15.0),
        (40, IN_5_MIN, 0.0, 7.5),
        (5000, IN_5_MIN, 1.0, 15.0),
        # never past the deadline
        (4, IN_3_S, 1.0, 3.0),
        (1, IN_3_S, 0.0, 0.5),
        # overdue: the step reached had the ladder been walked since the deadline
        (9, NOW, 0.5, 5.0),
        (9, NOW - timedelta(seconds=4), 0.5, 5.0),
        (9, NOW - timedelta(seconds=5), 0.5, 30.0),
        (9, NOW - timedelta(seconds=34), 0.5, 30.0),
        (9, NOW - timedelta(seconds=35), 0.5, 120.0),
        (9, NOW - timedelta(seconds=155), 0.5, 600.0),
        (1, NOW - timedelta(days=30), 0.5, 600.0),
        # no deadline: fast for three attempts, then the ladder, the last step forever
        (1, None, 0.0, 0.5),
        (2, None, 1.0, 2.0),
        (3, None, 1.0, 4.0),
        (4, None, 0.5, 5.0),
        (5, None, 0.5, 30.0),
        (6, None, 0.5, 120.0),
        (7, None, 0.5, 600.0),
        (10_000, None, 0.5, 600.0),
    ],
)
def test_next_delay(
    attempt: int, deadline_at: datetime | None, rand: float, expected: float
) -> None:
    delay = next_delay(attempt, now=NOW, deadline_at=deadline_at, ladder=LADDER, rand=lambda: rand)
    assert delay == pytest.approx(expected)


@pytest.mark.parametrize(
    ("ladder", "expected"),
    [((60,), 60.0), ((1, 2), 2.0)],
)
def test_next_delay_overdue_with_other_ladders(ladder: tuple[int, ...], expected: float) -> None:
    overdue = NOW - timedelta(hours=1)
    assert next_delay(1, now=NOW, deadline_at=overdue, ladder=ladder, rand=lambda: 0.0) == expected


@pytest.mark.parametrize(
    ("attempt", "ladder"),
    [(0, LADDER), (-1, LADDER), (1, ())],
)
def test_next_delay_refuses_nonsense(attempt: int, ladder: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"attempts|ladder"):
        next_delay(attempt, now=NOW, deadline_at=None, ladder=ladder, rand=lambda: 0.0)


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        (0.0, 5),
        (0.4, 5),
        (5.0, 5),
        (5.1, 30),
        (30.0, 30),
        (31.0, 120),
        (600.0, 600),
        (601.0, 600),
        (3600.0, 600),
    ],
)
def test_choose_retry_queue(delay: float, expected: int) -> None:
    assert choose_retry_queue(delay, LADDER) == expected


def test_choose_retry_queue_does_not_assume_the_ladder_is_sorted() -> None:
    assert choose_retry_queue(10, (600, 5, 30)) == 30


def test_choose_retry_queue_needs_a_ladder() -> None:
    with pytest.raises(ValueError, match="ladder"):
        choose_retry_queue(1.0, ())
