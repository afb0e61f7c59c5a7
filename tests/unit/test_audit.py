from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.audit import (
    CASE_EVENT,
    CASE_READ,
    GENESIS,
    Actor,
    AuditEntry,
    AuditHead,
    AuditRow,
    chained,
    row_hash,
    verify,
)

T0 = datetime(2026, 11, 30, 6, 45, tzinfo=UTC)
CASE = "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A"


def chain(n: int) -> list[AuditRow]:
    rows: list[AuditRow] = []
    prev = GENESIS
    for i in range(1, n + 1):
        entry = AuditEntry(
            at=T0 + timedelta(minutes=i),
            actor=Actor("satgas", f"petugas-{i}"),
            action=CASE_READ if i % 2 else CASE_EVENT,
            case_id=CASE,
            details={"type": "assessed", "step": i},
        )
        rows.append(chained(entry, seq=i, prev_hash=prev))
        prev = rows[-1].hash
    return rows


def head_of(rows: list[AuditRow]) -> AuditHead:
    return AuditHead(rows[-1].seq, rows[-1].hash) if rows else AuditHead(0, GENESIS)


def test_an_untouched_chain_verifies() -> None:
    rows = chain(5)
    verdict = verify(rows, head_of(rows))
    assert verdict.ok
    assert verdict.count == 5


def test_an_empty_log_verifies() -> None:
    assert verify([], AuditHead(0, GENESIS)).ok
    assert verify([], None).ok


def test_rows_chain_from_genesis_and_hash_their_fields() -> None:
    rows = chain(2)
    assert rows[0].prev_hash == GENESIS
    assert rows[1].prev_hash == rows[0].hash
    assert rows[0].hash == row_hash(
        seq=1,
        at="2026-11-30T06:46:00.000000+00:00",
        actor_role="satgas",
        actor_id="petugas-1",
        action=CASE_READ,
        case_id=CASE,
        details='{"step":1,"type":"assessed"}',
        prev_hash=GENESIS,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"at": "2026-11-30T06:49:00.000000+00:00"},
        {"actor_role": "head"},
        {"actor_id": None},
        {"action": "case.purged"},
        {"case_id": None},
        {"details": '{"step":3,"type":"closed"}'},
    ],
)
def test_an_edited_field_names_its_row(change: dict[str, object]) -> None:
    rows = chain(5)
    rows[2] = replace(rows[2], **change)  # type: ignore[arg-type]
    verdict = verify(rows, head_of(rows))
    assert not verdict.ok
    assert verdict.first_bad_seq == 3
    assert verdict.count == 2


def test_a_row_rehashed_after_editing_breaks_the_next_one() -> None:
    rows = chain(5)
    edited = replace(rows[2], action="case.purged")
    rows[2] = replace(
        edited,
        hash=row_hash(
            seq=3,
            at=edited.at,
            actor_role=edited.actor_role,
            actor_id=edited.actor_id,
            action=edited.action,
            case_id=edited.case_id,
            details=edited.details,
            prev_hash=edited.prev_hash,
        ),
    )
    assert verify(rows, head_of(chain(5))).first_bad_seq == 4


def test_a_deleted_middle_row_is_named() -> None:
    rows = chain(5)
    head = head_of(rows)
    del rows[1]
    verdict = verify(rows, head)
    assert verdict.first_bad_seq == 2
    assert verdict.problem == "row 2 is missing"


def test_a_deleted_last_row_is_caught_by_the_head() -> None:
    rows = chain(5)
    head = head_of(rows)
    verdict = verify(rows[:-1], head)
    assert verdict.first_bad_seq == 5
    assert verdict.count == 4


def test_a_deleted_first_row_is_named() -> None:
    rows = chain(3)
    assert verify(rows[1:], head_of(rows)).first_bad_seq == 1


def test_rows_beyond_the_head_or_a_missing_head_are_refused() -> None:
    rows = chain(3)
    assert verify(rows, head_of(rows[:2])).first_bad_seq == 3
    assert verify(rows, None).first_bad_seq == 1
    assert verify(rows, AuditHead(3, GENESIS)).first_bad_seq == 3


def test_naive_times_are_a_programming_error() -> None:
    entry = AuditEntry(at=datetime(2026, 1, 1), actor=Actor("ops"), action=CASE_READ)  # noqa: DTZ001
    with pytest.raises(ValueError, match="aware"):
        chained(entry, seq=1, prev_hash=GENESIS)
