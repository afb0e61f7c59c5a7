from datetime import UTC, date, datetime

import pytest

from gateway.times import age_at, age_band, is_child, to_date, to_utc


@pytest.mark.parametrize(
    ("written", "utc"),
    [
        ("2026-11-30 13:45:10", datetime(2026, 11, 30, 6, 45, 10, tzinfo=UTC)),
        ("2026-11-30T13:45:10", datetime(2026, 11, 30, 6, 45, 10, tzinfo=UTC)),
        ("2026-11-30T14:02:00+07:00", datetime(2026, 11, 30, 7, 2, tzinfo=UTC)),
        ("2026-11-30T07:02:00Z", datetime(2026, 11, 30, 7, 2, tzinfo=UTC)),
        ("2026-11-30T07:02:00.250+00:00", datetime(2026, 11, 30, 7, 2, 0, 250000, tzinfo=UTC)),
        ("2026-12-01 03:00:00", datetime(2026, 11, 30, 20, 0, tzinfo=UTC)),
        ("2026-11-30T13:45", datetime(2026, 11, 30, 6, 45, tzinfo=UTC)),
        (" 2026-11-30 13:45:10 ", datetime(2026, 11, 30, 6, 45, 10, tzinfo=UTC)),
    ],
)
def test_to_utc(written: str, utc: datetime) -> None:
    parsed = to_utc(written)
    assert parsed == utc
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset() == utc.utcoffset()


@pytest.mark.parametrize(
    "written",
    [
        "",
        "kemarin sore",
        "2026-11-30",
        "30/11/2026 13:45",
        "2026-11-30 25:00:00",
        "2026-02-30 10:00:00",
        "0001-01-01 00:00:00",
        "2026-11-30T13:45:10+25:00",
    ],
)
def test_to_utc_refuses(written: str) -> None:
    with pytest.raises(ValueError, match="date and time"):
        to_utc(written)


@pytest.mark.parametrize(
    ("written", "parsed"),
    [("2017-03-04", date(2017, 3, 4)), (" 2000-02-29 ", date(2000, 2, 29))],
)
def test_to_date(written: str, parsed: date) -> None:
    assert to_date(written) == parsed


@pytest.mark.parametrize("written", ["04-03-2017", "2017-02-30", "2017-3-4", "", "٢٠١٧-٠٣-٠٤"])
def test_to_date_refuses(written: str) -> None:
    with pytest.raises(ValueError, match="date"):
        to_date(written)


@pytest.mark.parametrize(
    ("born", "at", "age"),
    [
        (date(2017, 3, 4), datetime(2026, 3, 3, 12, tzinfo=UTC), 8),
        (date(2017, 3, 4), datetime(2026, 3, 4, 12, tzinfo=UTC), 9),
        # 17:30 UTC on 3 March is already 4 March in WIB
        (date(2017, 3, 4), datetime(2026, 3, 3, 17, 30, tzinfo=UTC), 9),
        (date(2017, 3, 4), datetime(2026, 3, 3, 16, 59, tzinfo=UTC), 8),
        (date(2008, 2, 29), datetime(2026, 2, 28, 12, tzinfo=UTC), 17),
        (date(2008, 2, 29), datetime(2026, 3, 1, 12, tzinfo=UTC), 18),
        (date(2027, 1, 1), datetime(2026, 3, 1, 12, tzinfo=UTC), -1),
    ],
)
def test_age_at(born: date, at: datetime, age: int) -> None:
    assert age_at(born, at) == age


@pytest.mark.parametrize(
    ("age", "band", "child"),
    [
        (0, "0-5", True),
        (5, "0-5", True),
        (6, "6-12", True),
        (12, "6-12", True),
        (13, "13-17", True),
        (17, "13-17", True),
        (18, "18-24", False),
        (24, "18-24", False),
        (25, "25-34", False),
        (34, "25-34", False),
        (35, "35-44", False),
        (44, "35-44", False),
        (45, "45-59", False),
        (59, "45-59", False),
        (60, "60+", False),
        (130, "60+", False),
    ],
)
def test_age_band(age: int, band: str, child: bool) -> None:
    assert age_band(age) == band
    assert is_child(age) is child


def test_negative_age_has_no_band() -> None:
    with pytest.raises(ValueError, match="negative"):
        age_band(-1)
