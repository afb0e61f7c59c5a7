import pytest

from gateway.topics import InvalidPattern, check_pattern, matches, matches_any


@pytest.mark.parametrize(
    ("pattern", "key", "matched"),
    [
        ("case.created.pinang.high", "case.created.pinang.high", True),
        ("case.created.pinang.high", "case.created.pinang.low", False),
        ("case.*.cipondoh.#", "case.created.cipondoh.high", True),
        ("case.*.cipondoh.#", "case.updated.cipondoh.-", True),
        ("case.*.cipondoh.#", "case.created.pinang.high", False),
        ("case.*.cipondoh.#", "sla.breached.cipondoh.high", False),
        # '#' matches zero words
        ("case.created.cipondoh.high.#", "case.created.cipondoh.high", True),
        ("#.case.created.cipondoh.high", "case.created.cipondoh.high", True),
        ("case.#.created.cipondoh.high", "case.created.cipondoh.high", True),
        ("status.#", "status.reported.pinang.high", True),
        ("status.#", "status", True),
        ("status.#", "statuses.reported.pinang.high", False),
        ("sla.breached.#", "sla.breached.pinang.critical", True),
        ("sla.breached.#", "sla.warning.pinang.critical", False),
        ("#", "delivery.parked.c112.-", True),
        ("#.high", "case.created.pinang.high", True),
        ("#.high", "case.created.pinang.low", False),
        ("*.*.*.*", "case.created.pinang.high", True),
        ("*.*.*", "case.created.pinang.high", False),
        ("*.*.*.*.*", "case.created.pinang.high", False),
        ("#.#", "case.created.pinang.high", True),
        ("*.#.*", "case.created", True),
        ("*.#.*", "case", False),
        ("case.*.#.high", "case.created.pinang.high", True),
        ("case.*.#.high", "case.high", False),
        # '*' is one word, never part of one
        ("case.*", "case.created.pinang.high", False),
        ("case.*.*.-", "case.created.pinang.-", True),
    ],
)
def test_matches_as_the_broker_does(pattern: str, key: str, matched: bool) -> None:
    assert matches(pattern, key) is matched


@pytest.mark.parametrize(
    "pattern",
    [
        "case.created.pinang.high",
        "case.*.cipondoh.#",
        "status.#",
        "sla.breached.#",
        "#",
        "*.*.*.*",
        "#.high",
        "case.#.high",
        "delivery.parked.c112.-",
        "case.created.karang_tengah.#",
        "a.#.b.#.c.d",
    ],
)
def test_valid_patterns(pattern: str) -> None:
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", "empty"),
        ("case..pinang.high", "word 2 is empty"),
        (".case.created.pinang", "word 1 is empty"),
        ("case.created.pinang.high.", "word 5 is empty"),
        ("case.cre*.pinang.high", "stand alone"),
        ("case.created#.pinang.high", "stand alone"),
        ("case.**.pinang.high", "stand alone"),
        ("case.##", "stand alone"),
        ("Case.created.pinang.high", "only a-z"),
        ("case.created.pinang kota.high", "only a-z"),
        ("case.created.pinang.high!", "only a-z"),
        ("case.created.pinang", "never match"),
        ("case.created.pinang.high.extra", "never match"),
        ("*.*.*.*.*", "never match"),
        ("a.b.c.d.e.#", "never match"),
        ("x" * 256, "at most"),
    ],
)
def test_invalid_patterns(pattern: str, why: str) -> None:
    with pytest.raises(InvalidPattern, match=why):
        check_pattern(pattern)


def test_matches_any() -> None:
    patterns = ("case.*.cipondoh.#", "sla.breached.#")

    assert matches_any(patterns, "sla.breached.pinang.high")
    assert matches_any(patterns, "case.created.cipondoh.low")
    assert not matches_any(patterns, "sla.warning.cipondoh.low")
    assert not matches_any((), "case.created.cipondoh.low")
