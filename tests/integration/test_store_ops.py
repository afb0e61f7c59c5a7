"""The ops console's recipients panel from the store, on SQLite and PostgreSQL: what waits
for each recipient follows settlement, parking and replay; a store from before the
index of waiting messages (0010) gets it filled in; and SQLite answers from that index
rather than by reading every delivery message ever made."""

import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from databases import query, sqlite_path
from samples import sealer_for_test, valid_01_case
from ulid import ULID

from contracts.case import Source
from gateway import audit
from gateway.adapters.sql_db import SQLITE_PREFIX, Row, Session, connect
from gateway.adapters.store import SqlStore
from gateway.adapters.store import ops as ops_sql
from gateway.adapters.store.schema import apply_migrations, load_migrations
from gateway.adapters.store.sql import fetch
from gateway.adapters.store.time_text import to_text
from gateway.model import (
    AcceptedReport,
    AttemptOutcome,
    DeliveryAttempt,
    Destination,
    OutboundMessage,
    ParkedMessage,
    ParkedSelector,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
OPS = audit.Actor("ops", "tok_0123456789ab")
C112 = "c112"
DASHBOARD = "dashboard-a"
SEALER = sealer_for_test()
WAITING_INDEX_VERSION = 10


def _report(reference: str, recipients: tuple[str, ...]) -> AcceptedReport:
    case = valid_01_case(
        case_id=f"urn:tangerangkota:kdrt:{ULID()}",
        source=Source(system="si-lacak-perak", channel="app", reference=reference),
        received_at=T0,
    )
    deliveries = [(Destination.DELIVER, recipient) for recipient in recipients]
    messages = tuple(
        OutboundMessage(
            destination=destination,
            routing_key=routing_key,
            message_id=str(uuid.uuid4()),
            case_id=case.case_id,
            sequence=1,
            body=b'{"sequence": 1}',
        )
        for destination, routing_key in [
            *deliveries,
            (Destination.EVENTS, "case.created.pinang.high"),
        ]
    )
    return AcceptedReport(
        source_system="si-lacak-perak",
        source_reference=reference,
        raw=b"{}",
        case=case,
        outgoing=messages,
    )


def _delivered(message: OutboundMessage, at: datetime) -> DeliveryAttempt:
    return DeliveryAttempt(
        distribution_id=message.message_id,
        case_id=message.case_id,
        recipient=message.routing_key,
        attempt=1,
        at=at,
        outcome=AttemptOutcome.DELIVERED,
        status_code=202,
    )


def _parked(message: OutboundMessage, at: datetime) -> ParkedMessage:
    return ParkedMessage(
        distribution_id=message.message_id,
        recipient=message.routing_key,
        case_id=message.case_id,
        sequence=message.sequence,
        attempt=3,
        tries=9,
        reason="http_400",
        parked_at=at,
        body=message.body,
    )


async def _unsettled_by_definition(url: str) -> dict[str, int]:
    """What waits, asked the way the panel asked before 0010: no settlement row."""
    rows = await query(
        url,
        "SELECT o.routing_key, COUNT(*) FROM outbox o WHERE o.destination = ? "
        "AND NOT EXISTS (SELECT 1 FROM delivery_settled s "
        "WHERE s.distribution_id = o.message_id AND s.recipient = o.routing_key) "
        "GROUP BY o.routing_key",
        (Destination.DELIVER.value,),
    )
    return {str(recipient): int(count) for recipient, count in rows}


async def _waiting(store: SqlStore) -> dict[str, tuple[int, datetime | None]]:
    activity = await store.recipient_activity(T0 - timedelta(hours=1))
    return {a.recipient: (a.waiting, a.oldest_waiting_since) for a in activity if a.waiting}


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    opened = await SqlStore.connect(store_url, sealer=SEALER)
    yield opened
    await opened.close()


async def test_what_waits_follows_settlement_parking_and_replay(
    store: SqlStore, store_url: str
) -> None:
    first = _report("SLP-OPS-1", (C112, DASHBOARD))
    second = _report("SLP-OPS-2", (C112,))
    for report in (first, second):
        await store.accept_report(report)
    to_112, to_dashboard, _ = first.outgoing
    later_to_112 = second.outgoing[0]
    assert await _waiting(store) == {C112: (2, T0), DASHBOARD: (1, T0)}

    await store.record_delivered(
        _delivered(to_dashboard, T0 + timedelta(seconds=1)), sequence=1, escalation_subjects=()
    )
    await store.record_delivered(
        _delivered(to_112, T0 + timedelta(seconds=2)), sequence=1, escalation_subjects=()
    )
    assert await _waiting(store) == {C112: (1, T0)}

    assert await store.park(_parked(later_to_112, T0 + timedelta(seconds=3)))
    assert await _waiting(store) == {}
    assert await _unsettled_by_definition(store_url) == {}

    replayed_at = T0 + timedelta(minutes=10)
    parked = await store.parked(ParkedSelector(recipient=C112))
    await store.mark_replayed([p.parked_id for p in parked], replayed_at, by=OPS)
    assert await _waiting(store) == {C112: (1, replayed_at)}
    assert await _unsettled_by_definition(store_url) == {C112: 1}

    await store.record_delivered(
        _delivered(later_to_112, replayed_at + timedelta(seconds=1)),
        sequence=1,
        escalation_subjects=(),
    )
    assert await _waiting(store) == {}
    assert await _unsettled_by_definition(store_url) == {}


async def test_a_delivered_message_parked_later_stays_settled(store: SqlStore) -> None:
    report = _report("SLP-OPS-3", (C112,))
    await store.accept_report(report)
    message = report.outgoing[0]
    await store.record_delivered(_delivered(message, T0), sequence=1, escalation_subjects=())
    await store.park(_parked(message, T0 + timedelta(seconds=1)))
    parked = await store.parked(ParkedSelector(distribution_id=message.message_id))
    await store.mark_replayed([p.parked_id for p in parked], T0 + timedelta(seconds=2), by=OPS)
    assert await _waiting(store) == {}


async def test_a_store_from_before_the_index_gets_what_waits_filled_in(store_url: str) -> None:
    before = [m for m in load_migrations() if m.version < WAITING_INDEX_VERSION]
    db = await connect(store_url)
    try:
        async with db.session() as conn:
            await apply_migrations(conn, before, db.dialect)
    finally:
        await db.close()
    old = SqlStore(await connect(store_url), SEALER)
    try:
        settled = _report("SLP-OPS-OLD-1", (C112,))
        waiting = _report("SLP-OPS-OLD-2", (C112,))
        for report in (settled, waiting):
            await old.accept_report(report)
        await _settle_without_the_mirror(store_url, settled.outgoing[0])
    finally:
        await old.close()

    store = await SqlStore.connect(store_url, sealer=SEALER)
    try:
        assert await _waiting(store) == {C112: (1, T0)}
        rows = await query(
            store_url,
            "SELECT message_id FROM outbox WHERE destination = ? AND settled_at IS NULL",
            (Destination.DELIVER.value,),
        )
        assert rows == [(waiting.outgoing[0].message_id,)]
    finally:
        await store.close()


async def test_a_message_settled_by_a_gateway_from_before_the_index_does_not_wait(
    store: SqlStore, store_url: str
) -> None:
    """During an upgrade an older process beside this one settles without the mirror."""
    report = _report("SLP-OPS-4", (C112,))
    await store.accept_report(report)
    await _settle_without_the_mirror(store_url, report.outgoing[0])
    assert await _waiting(store) == {}


async def _settle_without_the_mirror(url: str, message: OutboundMessage) -> None:
    """A settlement as a gateway from before 0010 wrote it."""
    sql = (
        "INSERT INTO delivery_settled (distribution_id, recipient, case_id, sequence, "
        "outcome, at) VALUES (?, ?, ?, ?, ?, ?)"
    )
    params = (
        message.message_id,
        message.routing_key,
        message.case_id,
        message.sequence,
        AttemptOutcome.DELIVERED.value,
        to_text(T0),
    )
    if url.startswith(SQLITE_PREFIX):
        with contextlib.closing(sqlite3.connect(sqlite_path(url))) as db, db:
            db.execute(sql, params)
        return
    await query(url, sql, params)


async def test_sqlite_answers_what_waits_from_the_index_of_waiting_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, tuple[object, ...]]] = []

    async def recording(conn: Session, sql: str, params: Sequence[object] = ()) -> list[Row]:
        asked.append((sql, tuple(params)))
        return await fetch(conn, sql, params)

    monkeypatch.setattr(ops_sql, "fetch", recording)
    path = tmp_path / "gateway.sqlite3"
    store = await SqlStore.open(path, sealer=SEALER)
    try:
        await store.recipient_activity(T0)
    finally:
        await store.close()
    [(sql, params)] = [(sql, p) for sql, p in asked if "FROM outbox o WHERE o.destination" in sql]
    with contextlib.closing(sqlite3.connect(path)) as db:
        plan = " ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "INDEX outbox_waiting" in plan, plan
