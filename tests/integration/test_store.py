"""The store against real databases: every test of the port runs on SQLite (a file in
``tmp_path``) and on PostgreSQL (a database of its own); some are about SQLite alone."""

import asyncio
import os
import shutil
import sqlite3
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from databases import query
from samples import sealer_for_test
from ulid import ULID

from contracts.case import (
    Area,
    Case,
    Channel,
    Consent,
    Location,
    Reporter,
    ReporterRole,
    Risk,
    RiskLevel,
    Source,
    Victim,
    ViolenceForm,
)
from contracts.problem import FieldError
from gateway.adapters.sealing import row_aad
from gateway.adapters.store import SqlStore
from gateway.adapters.store.schema import load_migrations, split_statements
from gateway.errors import StoreUnavailable
from gateway.model import (
    AcceptedReport,
    AttemptOutcome,
    DeliveryAttempt,
    Destination,
    IntakeResult,
    OutboundMessage,
    OutboxClaim,
    QuarantinedInput,
)
from gateway.ports import Store

SEALER = sealer_for_test()

T0 = datetime(2026, 11, 30, 6, 45, 10, 123456, tzinfo=UTC)
WIB = timezone(timedelta(hours=7))


def make_case(reference: str, *, needs_other_agencies: bool = True) -> Case:
    return Case(
        case_id=f"urn:tangerangkota:kdrt:{ULID()}",
        source=Source(system="si-lacak-perak", channel=Channel.APP, reference=reference),
        received_at=T0,
        reported_at=T0 - timedelta(seconds=5),
        violence_forms=[ViolenceForm.PHYSICAL, ViolenceForm.PSYCHOLOGICAL],
        risk=Risk(
            level=RiskLevel.HIGH,
            immediate_danger=True,
            perpetrator_present=True,
            weapon=False,
            injury=True,
            child_involved=False,
            disability=False,
            pregnancy=False,
        ),
        needs_other_agencies=needs_other_agencies,
        location=Location(
            kecamatan=Area(code="36.71.05", name="Pinang"),
            kelurahan=Area(code="36.71.05.1001", name="Sudimara Pinang"),
            address="Jl. Contoh No. 1",
        ),
        reporter=Reporter(role=ReporterRole.NEIGHBOUR, anonymous=False, name="Pelapor Uji"),
        victims=[Victim(name="Korban Uji", age=29)],
        consent=Consent(share_victim_data=True),
    )


def make_message(case: Case, sequence: int, *, message_id: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        destination=Destination.DELIVER if sequence % 2 else Destination.EVENTS,
        routing_key=f"case.created.pinang.high.{sequence}",
        message_id=message_id or str(uuid.uuid4()),
        case_id=case.case_id,
        sequence=sequence,
        body=f'{{"sequence": {sequence}}}'.encode(),
        deadline_at=T0 + timedelta(minutes=5) if sequence % 2 else None,
    )


def make_report(
    reference: str = "SLP-20261130-0001",
    *,
    messages: int = 2,
    case: Case | None = None,
) -> AcceptedReport:
    case = case or make_case(reference)
    return AcceptedReport(
        source_system="si-lacak-perak",
        source_reference=reference,
        raw=b'{"id_laporan": "' + reference.encode() + b'"}',
        case=case,
        outgoing=tuple(make_message(case, n) for n in range(1, messages + 1)),
        c112_deadline_at=T0 + timedelta(minutes=5),
    )


def query_file(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the file with a connection of its own, as an operator would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gateway.sqlite3"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    opened = await SqlStore.connect(store_url, sealer=SEALER)
    yield opened
    await opened.close()


@pytest.fixture
def locker(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A second writer on the same file, to hold the write lock when a test asks."""
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


async def test_migrations_are_applied_once_and_recorded(store_url: str) -> None:
    store = await SqlStore.connect(store_url, sealer=SEALER)
    await store.close()
    applied = "SELECT version, applied_at FROM schema_migrations ORDER BY version"
    recorded = await query(store_url, applied)
    assert [v for v, _ in recorded] == [m.version for m in load_migrations()]
    for table in ("reports", "cases", "outbox", "quarantine", "delivery_log"):
        assert await query(store_url, f"SELECT COUNT(*) FROM {table}") == [(0,)]  # noqa: S608

    again = await SqlStore.connect(store_url, sealer=SEALER)
    await again.close()
    assert await query(store_url, applied) == recorded


async def test_opens_racing_on_a_new_file_apply_each_migration_once(
    db_path: Path, locker: sqlite3.Connection
) -> None:
    locker.execute("PRAGMA journal_mode = WAL")
    locker.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    locker.execute("BEGIN IMMEDIATE")
    opening = [asyncio.create_task(SqlStore.open(db_path, sealer=SEALER)) for _ in range(3)]
    await asyncio.sleep(0.2)  # every opener has seen "nothing applied" and waits for the lock
    locker.execute("COMMIT")

    outcomes = await asyncio.gather(*opening, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, SqlStore):
            await outcome.close()
    assert [o for o in outcomes if not isinstance(o, SqlStore)] == []
    versions = [v for (v,) in query_file(db_path, "SELECT version FROM schema_migrations")]
    assert sorted(versions) == [m.version for m in load_migrations()]


async def test_open_sets_durable_pragmas(db_path: Path) -> None:
    store = await SqlStore.open(db_path, sealer=SEALER)
    await store.close()
    assert query_file(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert db_path.parent.is_dir()


async def test_reports_taken_together_are_answered_each_on_its_own(store: SqlStore) -> None:
    first = make_report("SLP-G1")
    clash = replace(make_report("SLP-G2"), case=first.case)  # its case id is taken
    again = make_report("SLP-G1")  # the same report, sent again
    last = make_report("SLP-G3")

    answers = await asyncio.gather(
        *(store.accept_report(r) for r in (first, clash, again, last)), return_exceptions=True
    )

    assert isinstance(answers[1], StoreUnavailable)
    assert answers[0] == IntakeResult(
        case_id=first.case.case_id,
        duplicate=False,
        received_at=T0,
        needs_other_agencies=True,
        c112_deadline_at=first.c112_deadline_at,
    )
    assert isinstance(answers[2], IntakeResult)
    assert answers[2].duplicate is True
    assert answers[2].case_id == first.case.case_id
    assert isinstance(answers[3], IntakeResult)
    assert answers[3].duplicate is False
    assert await store.count_cases() == 2
    assert await store.get_case(last.case.case_id) == last.case


async def test_accept_report_can_write_its_outbox_rows_held_by_one_relay(
    store: SqlStore,
) -> None:
    held = make_report("SLP-HELD", messages=2)
    held = replace(held, outbox_claim=OutboxClaim("relay-a", T0 + timedelta(seconds=30)))

    plain = make_report("SLP-PLAIN", messages=1)

    result = await store.accept_report(held)

    assert [r.message for r in result.claimed_outbox] == list(held.outgoing)
    assert (await store.accept_report(plain)).claimed_outbox == ()
    others = await store.claim_outbox("relay-b", 10, now=T0, lease_s=30)
    assert [r.message for r in others] == list(plain.outgoing)
    assert await store.claim_outbox("relay-a", 10, now=T0, lease_s=30, own=False) == []
    own = await store.claim_outbox("relay-a", 10, now=T0, lease_s=30)
    assert [r.id for r in own] == [r.id for r in result.claimed_outbox]
    late = await store.claim_outbox("relay-b", 10, now=T0 + timedelta(seconds=61), lease_s=30)
    assert [r.id for r in late] == [r.id for r in (*result.claimed_outbox, *others)]


async def test_accept_report_writes_report_case_and_outbox(store: SqlStore, store_url: str) -> None:
    report = make_report(messages=3)

    result = await store.accept_report(report)

    assert result.case_id == report.case.case_id
    assert result.duplicate is False
    assert result.received_at == T0
    assert result.needs_other_agencies is True
    assert result.c112_deadline_at == T0 + timedelta(minutes=5)
    assert await store.get_case(report.case.case_id) == report.case
    assert await store.count_cases() == 1
    [(raw, case_id)] = await query(store_url, "SELECT raw, case_id FROM reports")
    assert case_id == report.case.case_id
    assert SEALER.open(bytes(raw), row_aad("reports", "raw", case_id)) == report.raw
    assert await query(
        store_url, "SELECT state, kecamatan_code, risk_level, needs_other_agencies FROM cases"
    ) == [("received", "36.71.05", "high", 1)]
    pending = await store.pending_outbox(limit=10)
    assert [row.message for row in pending] == list(report.outgoing)


async def test_a_failure_inside_accept_report_writes_nothing(
    store: SqlStore, store_url: str
) -> None:
    case = make_case("SLP-1")
    clash = str(uuid.uuid4())
    broken = AcceptedReport(
        source_system="si-lacak-perak",
        source_reference="SLP-1",
        raw=b"{}",
        case=case,
        outgoing=(make_message(case, 1, message_id=clash), make_message(case, 2, message_id=clash)),
    )

    with pytest.raises(StoreUnavailable):
        await store.accept_report(broken)

    assert await store.count_cases() == 0
    assert await store.outbox_lag() == 0
    assert await query(store_url, "SELECT COUNT(*) FROM reports") == [(0,)]
    retried = await store.accept_report(make_report("SLP-1", case=case))
    assert retried.duplicate is False
    assert await store.count_cases() == 1


async def test_a_known_source_reference_answers_the_first_case(store: SqlStore) -> None:
    first = await store.accept_report(make_report("SLP-7", messages=2))

    second = await store.accept_report(make_report("SLP-7", messages=3))

    assert second.case_id == first.case_id
    assert second.duplicate is True
    assert (second.received_at, second.c112_deadline_at) == (
        first.received_at,
        first.c112_deadline_at,
    )
    assert second.needs_other_agencies is True
    assert await store.count_cases() == 1
    assert await store.outbox_lag() == 2


async def test_the_same_reference_from_another_source_system_is_a_new_case(
    store: SqlStore,
) -> None:
    await store.accept_report(make_report("SLP-7"))
    other = make_report("SLP-7")
    other = AcceptedReport(
        source_system="another-channel",
        source_reference=other.source_reference,
        raw=other.raw,
        case=other.case,
        outgoing=other.outgoing,
    )

    result = await store.accept_report(other)

    assert result.duplicate is False
    assert await store.count_cases() == 2


async def test_two_concurrent_intakes_of_one_reference_make_one_case(store_url: str) -> None:
    stores = [await SqlStore.connect(store_url, sealer=SEALER) for _ in range(2)]
    reports = [make_report("SLP-9", messages=2) for _ in stores]
    try:
        results = await asyncio.gather(
            *(s.accept_report(r) for s, r in zip(stores, reports, strict=True))
        )
        assert stores[0] is not stores[1]
        assert await stores[0].count_cases() == 1
        assert results[0].case_id == results[1].case_id
        assert sorted(r.duplicate for r in results) == [False, True]
        winner = next(r for r in reports if r.case.case_id == results[0].case_id)
        pending = await stores[1].pending_outbox(limit=10)
        assert [row.message for row in pending] == list(winner.outgoing)
    finally:
        for opened in stores:
            await opened.close()


async def test_pending_outbox_and_mark_published(store: SqlStore, store_url: str) -> None:
    await store.accept_report(make_report("SLP-1", messages=2))
    await store.accept_report(make_report("SLP-2", messages=2))

    first_three = await store.pending_outbox(limit=3)
    assert [row.id for row in first_three] == sorted(row.id for row in first_three)
    assert [row.message.sequence for row in first_three] == [1, 2, 1]

    await store.mark_published([row.id for row in first_three], T0)
    await store.mark_published([first_three[0].id], T0 + timedelta(hours=1))
    await store.mark_published([], T0)

    left = await store.pending_outbox(limit=10)
    assert len(left) == 1
    assert left[0].id > first_three[-1].id
    assert await store.outbox_lag() == 1
    stamps = await query(
        store_url, "SELECT published_at FROM outbox WHERE published_at IS NOT NULL"
    )
    assert {datetime.fromisoformat(str(at)) for (at,) in stamps} == {T0}


async def test_quarantine_round_trip(store: SqlStore, store_url: str) -> None:
    item = QuarantinedInput(
        received_at=T0.astimezone(WIB),
        source="si-lacak-perak",
        reason="invalid-report",
        raw=b'{"no_hp": "0812"}',
        content_type="application/json",
        errors=(
            FieldError(pointer="/pelapor/no_hp", detail="not a phone number"),
            FieldError(pointer="/lokasi", detail="required"),
        ),
    )

    quarantine_id = await store.quarantine(item)

    assert uuid.UUID(quarantine_id).version == 4
    assert await store.quarantined() == [
        {
            "id": quarantine_id,
            "received_at": T0,
            "source": "si-lacak-perak",
            "reason": "invalid-report",
            "content_type": "application/json",
            "errors": [
                {"pointer": "/pelapor/no_hp", "detail": "not a phone number"},
                {"pointer": "/lokasi", "detail": "required"},
            ],
        }
    ]
    [(raw,)] = await query(store_url, "SELECT raw FROM quarantine WHERE id = ?", (quarantine_id,))
    assert SEALER.open(bytes(raw), row_aad("quarantine", "raw", quarantine_id)) == item.raw


async def test_delivery_log_round_trip(store: SqlStore) -> None:
    retry = DeliveryAttempt(
        distribution_id="d-1",
        case_id="case-a",
        recipient="c112",
        attempt=1,
        at=T0.astimezone(WIB),
        outcome=AttemptOutcome.RETRY,
        latency_ms=5000.5,
        error_class="timeout",
        next_try_at=T0 + timedelta(seconds=5),
    )
    delivered = DeliveryAttempt(
        distribution_id="d-1",
        case_id="case-a",
        recipient="c112",
        attempt=2,
        at=T0 + timedelta(seconds=6),
        outcome=AttemptOutcome.DELIVERED,
        latency_ms=42.0,
        status_code=202,
    )
    other = DeliveryAttempt(
        distribution_id="d-2",
        case_id="case-b",
        recipient="police",
        attempt=1,
        at=T0,
        outcome=AttemptOutcome.PARKED,
        status_code=400,
        reason="recipient refused the body",
    )
    for attempt in (retry, delivered, other):
        await store.record_attempt(attempt)

    assert await store.delivery_log(case_id="case-a") == [delivered, retry]
    assert await store.delivery_log(distribution_id="d-2") == [other]
    assert await store.delivery_log(case_id="case-a", distribution_id="d-2") == []
    assert await store.delivery_log(limit=2) == [other, delivered]
    logged = await store.delivery_log(case_id="case-a")
    assert logged[1].at.utcoffset() == timedelta(0)


async def test_a_message_counts_as_already_delivered_only_to_the_recipient_that_has_it(
    store: SqlStore,
) -> None:
    delivered = DeliveryAttempt(
        distribution_id="d-1",
        case_id="case-a",
        recipient="c112",
        attempt=1,
        at=T0,
        outcome=AttemptOutcome.DELIVERED,
        latency_ms=12.0,
        status_code=200,
    )
    assert not await store.already_delivered(distribution_id="d-1", recipient="c112")

    await store.record_delivered(delivered, sequence=1, escalation_subjects=())

    assert await store.already_delivered(distribution_id="d-1", recipient="c112")
    assert not await store.already_delivered(distribution_id="d-1", recipient="police")
    assert not await store.already_delivered(distribution_id="d-2", recipient="c112")


async def test_get_case_of_an_unknown_id_is_none(store: SqlStore) -> None:
    assert await store.get_case("urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A") is None


async def test_naive_times_are_refused(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="aware"):
        await store.mark_published([1], datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


async def test_ping_answers_while_open_and_every_call_fails_cleanly_once_closed(
    store: SqlStore,
) -> None:
    port: Store = store
    await port.ping()
    await port.close()
    await port.close()

    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.accept_report(make_report())
    with pytest.raises(StoreUnavailable):
        await store.get_case("anything")


async def test_a_lock_held_too_long_is_store_unavailable(
    db_path: Path, locker: sqlite3.Connection
) -> None:
    store = await SqlStore.open(db_path, sealer=SEALER, busy_timeout_ms=50)
    try:
        locker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="SQLITE_BUSY"):
            await store.accept_report(make_report())
        locker.execute("ROLLBACK")

        assert (await store.accept_report(make_report())).duplicate is False
    finally:
        await store.close()


async def test_cancelling_an_intake_leaves_no_open_transaction(
    db_path: Path, locker: sqlite3.Connection
) -> None:
    store = await SqlStore.open(db_path, sealer=SEALER, busy_timeout_ms=10_000)
    try:
        locker.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(store.accept_report(make_report("SLP-1")))
        await asyncio.sleep(0.05)
        waiting.cancel()
        locker.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await waiting

        assert (await store.accept_report(make_report("SLP-2"))).duplicate is False
        assert await store.count_cases() == 1
    finally:
        await store.close()


@pytest.fixture
def read_only(db_path: Path) -> Iterator[None]:
    """Make the database file unwritable, even for root (immutable flag)."""
    if os.geteuid() != 0:
        db_path.chmod(stat.S_IRUSR | stat.S_IRGRP)
        yield
        db_path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", db_path], check=False).returncode:
        pytest.skip("running as root where the immutable flag cannot be set")
    yield
    subprocess.run([chattr, "-i", db_path], check=True)


async def test_a_read_only_file_is_store_unavailable(
    db_path: Path, request: pytest.FixtureRequest
) -> None:
    first = await SqlStore.open(db_path, sealer=SEALER)
    await first.close()
    request.getfixturevalue("read_only")

    store = await SqlStore.open(db_path, sealer=SEALER)
    try:
        await store.ping()
        with pytest.raises(StoreUnavailable, match="readonly"):
            await store.accept_report(make_report())
        with pytest.raises(StoreUnavailable):
            await store.quarantine(QuarantinedInput(T0, "si-lacak-perak", "invalid", b"{}"))
        assert await store.count_cases() == 0
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("script", "statements"),
    [
        ("", []),
        ("-- only a comment\n", []),
        ("CREATE TABLE a (x TEXT);\n", ["CREATE TABLE a (x TEXT);"]),
        (
            "CREATE TABLE a (\n  x TEXT\n);\n\nCREATE INDEX ai ON a (x);\n",
            ["CREATE TABLE a (\n  x TEXT\n);", "CREATE INDEX ai ON a (x);"],
        ),
        (
            "-- the default;\nCREATE TABLE a (x TEXT DEFAULT 'a;b');\n",
            ["-- the default;\nCREATE TABLE a (x TEXT DEFAULT 'a;b');"],
        ),
    ],
)
def test_split_statements(script: str, statements: list[str]) -> None:
    assert split_statements(script) == statements


def test_split_statements_refuses_a_statement_without_its_semicolon() -> None:
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE a (x TEXT);\nCREATE TABLE b (x TEXT)\n")


def test_the_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_concurrent_opens_of_a_new_database_apply_each_migration_once(
    store_url: str,
) -> None:
    opened = await asyncio.gather(*(SqlStore.connect(store_url, sealer=SEALER) for _ in range(3)))
    for store in opened:
        await store.close()

    versions = [v for (v,) in await query(store_url, "SELECT version FROM schema_migrations")]
    assert sorted(versions) == [m.version for m in load_migrations()]
