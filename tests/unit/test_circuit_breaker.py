from datetime import UTC, datetime, timedelta

import pytest

from gateway.circuit_breaker import BreakerState, CircuitBreaker

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("events", "state", "admits_at_end"),
    [
        ([], BreakerState.CLOSED, True),
        (["fail", "fail"], BreakerState.CLOSED, True),
        (["fail", "fail", "fail"], BreakerState.OPEN, False),
        (["fail", "fail", "ok", "fail", "fail"], BreakerState.CLOSED, True),
        (["fail", "fail", "fail", "ok"], BreakerState.CLOSED, True),
    ],
)
def test_consecutive_failures_open_it(
    events: list[str], state: BreakerState, admits_at_end: bool
) -> None:
    breaker = CircuitBreaker(threshold=3, cool_down_s=10)
    for event in events:
        if event == "fail":
            breaker.failed(at(0))
        else:
            breaker.succeeded()
    assert breaker.state is state
    assert breaker.admits(at(1)) is admits_at_end


def test_only_the_failure_that_opens_it_says_so() -> None:
    breaker = CircuitBreaker(threshold=2, cool_down_s=10)
    assert [breaker.failed(at(0)) for _ in range(4)] == [False, True, False, False]


def test_after_the_cool_down_exactly_one_probe_goes() -> None:
    breaker = CircuitBreaker(threshold=1, cool_down_s=10)
    breaker.failed(at(0))
    assert breaker.remaining_s(at(4)) == pytest.approx(6)
    assert not breaker.admits(at(9.9))
    assert breaker.admits(at(10))
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.admits(at(10.1)), "a second caller while the probe is out"


def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    breaker = CircuitBreaker(threshold=1, cool_down_s=10)
    breaker.failed(at(0))
    assert breaker.admits(at(10))
    assert breaker.failed(at(11))
    assert breaker.state is BreakerState.OPEN
    assert not breaker.admits(at(20.9))
    assert breaker.admits(at(21))


def test_a_good_probe_closes_it() -> None:
    breaker = CircuitBreaker(threshold=1, cool_down_s=10)
    breaker.failed(at(0))
    breaker.admits(at(10))
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert breaker.admits(at(10))
    assert breaker.admits(at(10))


def probe_waits(breaker: CircuitBreaker, failed_probes: int) -> list[float]:
    """Open ``breaker`` at 0, fail ``failed_probes`` probes, each as soon as it may go;
    answers each cool-down in turn."""
    now = 0.0
    breaker.failed(at(now))
    waits = [breaker.remaining_s(at(now))]
    for _ in range(failed_probes):
        now += waits[-1]
        assert not breaker.admits(at(now - 0.01))
        assert breaker.admits(at(now))
        assert breaker.failed(at(now)), "a failed probe opens it again"
        waits.append(breaker.remaining_s(at(now)))
    return waits


@pytest.mark.parametrize(
    ("first", "longest", "waits"),
    [
        (1.0, 30.0, [1, 2, 4, 8, 16, 30, 30]),
        (0.5, 3.0, [0.5, 1, 2, 3, 3, 3, 3]),
        (None, 10.0, [10, 10, 10, 10, 10, 10, 10]),
        (45.0, 30.0, [30, 30, 30, 30, 30, 30, 30]),
    ],
)
def test_each_failed_probe_doubles_the_cool_down_up_to_the_longest(
    first: float | None, longest: float, waits: list[float]
) -> None:
    breaker = CircuitBreaker(threshold=1, cool_down_s=longest, first_cool_down_s=first)
    assert probe_waits(breaker, 6) == pytest.approx(waits)


def test_a_good_probe_makes_the_next_opening_short_again() -> None:
    breaker = CircuitBreaker(threshold=1, cool_down_s=30, first_cool_down_s=1)
    assert probe_waits(breaker, 3)[-1] == pytest.approx(8)
    assert breaker.admits(at(100))
    breaker.succeeded()
    breaker.failed(at(200))
    assert breaker.remaining_s(at(200)) == pytest.approx(1)


@pytest.mark.parametrize(
    ("threshold", "cool_down_s", "first"),
    [(0, 1.0, None), (1, 0.0, None), (1, -1.0, None), (1, 1.0, 0.0), (1, 1.0, -2.0)],
)
def test_refuses_nonsense(threshold: int, cool_down_s: float, first: float | None) -> None:
    with pytest.raises(ValueError, match="breaker"):
        CircuitBreaker(threshold=threshold, cool_down_s=cool_down_s, first_cool_down_s=first)
