"""The embedded default store: one SQLite file, reached through aiosqlite.

Every ``sqlite3`` error is translated into ``StoreUnavailable`` here, at the boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import aiosqlite

from contracts.case import Case
from contracts.envelope import RecipientRole
from contracts.subscription import DeliveryMode, SubscriptionStatus
from contracts.workflow import CaseState, EventType, StaffRole
from gateway.case_messages import CaseDecision
from gateway.errors import StoreUnavailable
from gateway.model import (
    AcceptedReport,
    AttemptOutcome,
    DeliveryAttempt,
    DeliveryLogQuery,
    Destination,
    IntakeResult,
    LoggedAttempt,
    OutboundMessage,
    OutboxRow,
    ParkedMessage,
    ParkedSelector,
    QuarantinedInput,
    ReceiptRecord,
    Timer,
)
from gateway.partners import Subscription
from gateway.routing import C112_RECIPIENT
from gateway.workflow import (
    SLA_KINDS,
    C112Stream,
    CaseSnapshot,
    HistoryEntry,
    StepRecord,
    Workflow,
)

MIGRATIONS_PACKAGE = "gateway.adapters.migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """The numbered ``NNNN_name.sql`` files of ``package``, in version order."""
    found: dict[int, Migration] = {}
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(
                f"two migrations numbered {version}: {found[version].name}, {entry.name}"
            )
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Cut a script into single statements (sqlite3 executes one at a time in a transaction)."""
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    leftover = [ln for ln in pending.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    if leftover:
        raise ValueError("migration ends with an incomplete statement")
    return statements


def _to_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("the store keeps aware datetimes only")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _opt_text(moment: datetime | None) -> str | None:
    return None if moment is None else _to_text(moment)


def _from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _opt_from_text(text: str | None) -> datetime | None:
    return None if text is None else _from_text(text)


def _unavailable(exc: sqlite3.Error) -> StoreUnavailable:
    name = getattr(exc, "sqlite_errorname", type(exc).__name__)
    return StoreUnavailable(f"sqlite {name}: {exc}")


async def _run(conn: aiosqlite.Connection, sql: str, params: Sequence[object] = ()) -> None:
    cursor = await conn.execute(sql, params)
    await cursor.close()


async def _rows(
    conn: aiosqlite.Connection, sql: str, params: Sequence[object] = ()
) -> list[sqlite3.Row]:
    return list(await conn.execute_fetchall(sql, params))


@contextlib.asynccontextmanager
async def _transaction(conn: aiosqlite.Connection) -> AsyncIterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back on any exception, cancellation included."""
    try:
        await _run(conn, "BEGIN IMMEDIATE")
        yield
        await _run(conn, "COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error, ValueError):
            await _run(conn, "ROLLBACK")
        raise


async def _apply_migrations(conn: aiosqlite.Connection, migrations: Iterable[Migration]) -> None:
    await _run(
        conn,
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    applied = {row[0] for row in await _rows(conn, "SELECT version FROM schema_migrations")}
    for migration in migrations:
        if migration.version in applied:
            continue
        async with _transaction(conn):
            # Another process may have applied it while we waited for the write lock.
            again = await _rows(
                conn, "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            )
            if again:
                continue
            for statement in split_statements(migration.sql):
                await _run(conn, statement)
            await _run(
                conn,
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, _to_text(datetime.now(UTC))),
            )


_PENDING_OUTBOX = (
    "SELECT id, destination, routing_key, message_id, case_id, sequence, deadline_at, body "
    "FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?"
)
_MARK_PUBLISHED = "UPDATE outbox SET published_at = ? WHERE id = ? AND published_at IS NULL"
_INSERT_ATTEMPT = (
    "INSERT INTO delivery_log (distribution_id, case_id, recipient, attempt, at, outcome, "
    "latency_ms, status_code, error_class, next_try_at, reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_ATTEMPTS = (
    "SELECT id, distribution_id, case_id, recipient, attempt, at, outcome, latency_ms, "
    "status_code, error_class, next_try_at, reason FROM delivery_log "
)
_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (id, received_at, source, reason, content_type, errors, raw) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SqliteStore:
    """The ``Store`` port on one SQLite file (WAL, ``synchronous=FULL``, foreign keys on).

    One connection per instance, used by one operation at a time; several instances
    (or processes) may share the file, writers queueing on SQLite's lock up to
    ``busy_timeout_ms``.

    Beyond the port, for ops and tests:

    - ``delivery_log(*, case_id=None, distribution_id=None, limit=100)``: delivery
      attempts, newest first, optionally of one case and/or one distribution.
    - ``count_cases()``: how many cases are kept.
    - ``quarantined(limit=100)``: refused inputs, newest first, as dicts with ``id``,
      ``received_at``, ``source``, ``reason``, ``content_type`` and ``errors`` (a list of
      ``{pointer, detail}``); never the raw bytes.
    - ``outbox_lag()``: how many outbox rows are not yet published.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        """Use ``SqliteStore.open``; this takes a connection that is already set up."""
        self._conn: aiosqlite.Connection | None = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, *, busy_timeout_ms: int = 5000) -> SqliteStore:
        """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the store's directory: {exc.strerror}") from exc
        migrations = load_migrations()
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc
        try:
            conn.row_factory = sqlite3.Row
            await _run(conn, f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            await _run(conn, "PRAGMA journal_mode = WAL")
            await _run(conn, "PRAGMA synchronous = FULL")
            await _run(conn, "PRAGMA foreign_keys = ON")
            await _apply_migrations(conn, migrations)
        except sqlite3.Error as exc:
            await conn.close()
            raise _unavailable(exc) from exc
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, held alone; sqlite errors come out as ``StoreUnavailable``."""
        async with self._lock:
            if self._conn is None:
                raise StoreUnavailable("the store is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise _unavailable(exc) from exc

    async def accept_report(self, report: AcceptedReport) -> IntakeResult:
        async with self._session() as conn:
            try:
                async with _transaction(conn):
                    existing = await self._existing(conn, report)
                    if existing is not None:
                        return existing
                    await self._insert_report(conn, report)
            except sqlite3.IntegrityError as exc:
                existing = await self._existing(conn, report)
                if existing is None:
                    raise _unavailable(exc) from exc
                return existing
        case = report.case
        return IntakeResult(
            case_id=case.case_id,
            duplicate=False,
            received_at=case.received_at,
            needs_other_agencies=case.needs_other_agencies,
            c112_deadline_at=report.c112_deadline_at,
        )

    @staticmethod
    async def _existing(conn: aiosqlite.Connection, report: AcceptedReport) -> IntakeResult | None:
        rows = await _rows(
            conn,
            "SELECT c.case_id, c.received_at, c.needs_other_agencies, c.c112_deadline_at "
            "FROM reports r JOIN cases c ON c.case_id = r.case_id "
            "WHERE r.source_system = ? AND r.source_reference = ?",
            (report.source_system, report.source_reference),
        )
        if not rows:
            return None
        row = rows[0]
        return IntakeResult(
            case_id=row["case_id"],
            duplicate=True,
            received_at=_from_text(row["received_at"]),
            needs_other_agencies=bool(row["needs_other_agencies"]),
            c112_deadline_at=_opt_from_text(row["c112_deadline_at"]),
        )

    @staticmethod
    async def _insert_report(conn: aiosqlite.Connection, report: AcceptedReport) -> None:
        case = report.case
        received_at = _to_text(case.received_at)
        await _run(
            conn,
            "INSERT INTO cases (case_id, source_system, source_reference, received_at, "
            "kecamatan_code, risk_level, needs_other_agencies, c112_deadline_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                case.case_id,
                report.source_system,
                report.source_reference,
                received_at,
                case.location.kecamatan.code,
                case.risk.level.value,
                int(case.needs_other_agencies),
                _opt_text(report.c112_deadline_at),
                case.model_dump_json(),
            ),
        )
        await _run(
            conn,
            "INSERT INTO reports (source_system, source_reference, received_at, raw, case_id) "
            "VALUES (?, ?, ?, ?, ?)",
            (report.source_system, report.source_reference, received_at, report.raw, case.case_id),
        )
        cursor = await conn.executemany(
            "INSERT INTO outbox (created_at, destination, routing_key, message_id, case_id, "
            "sequence, deadline_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    received_at,
                    m.destination.value,
                    m.routing_key,
                    m.message_id,
                    m.case_id,
                    m.sequence,
                    _opt_text(m.deadline_at),
                    m.body,
                )
                for m in report.outgoing
            ],
        )
        await cursor.close()
        await SqliteStore._insert_timers(conn, report.timers)

    async def quarantine(self, item: QuarantinedInput) -> str:
        quarantine_id = str(uuid.uuid4())
        errors = json.dumps([{"pointer": e.pointer, "detail": e.detail} for e in item.errors])
        async with self._session() as conn, _transaction(conn):
            await _run(
                conn,
                _INSERT_QUARANTINE,
                (
                    quarantine_id,
                    _to_text(item.received_at),
                    item.source,
                    item.reason,
                    item.content_type,
                    errors,
                    item.raw,
                ),
            )
        return quarantine_id

    async def pending_outbox(self, limit: int) -> list[OutboxRow]:
        async with self._session() as conn:
            rows = await _rows(conn, _PENDING_OUTBOX, (limit,))
        return [
            OutboxRow(
                id=row["id"],
                message=OutboundMessage(
                    destination=Destination(row["destination"]),
                    routing_key=row["routing_key"],
                    message_id=row["message_id"],
                    case_id=row["case_id"],
                    sequence=row["sequence"],
                    body=bytes(row["body"]),
                    deadline_at=_opt_from_text(row["deadline_at"]),
                ),
            )
            for row in rows
        ]

    async def mark_published(self, ids: Sequence[int], at: datetime) -> None:
        if not ids:
            return
        published_at = _to_text(at)
        async with self._session() as conn, _transaction(conn):
            cursor = await conn.executemany(_MARK_PUBLISHED, [(published_at, i) for i in ids])
            await cursor.close()

    async def record_attempt(self, attempt: DeliveryAttempt) -> None:
        async with self._session() as conn, _transaction(conn):
            await _run(
                conn,
                _INSERT_ATTEMPT,
                (
                    attempt.distribution_id,
                    attempt.case_id,
                    attempt.recipient,
                    attempt.attempt,
                    _to_text(attempt.at),
                    attempt.outcome.value,
                    attempt.latency_ms,
                    attempt.status_code,
                    attempt.error_class,
                    _opt_text(attempt.next_try_at),
                    attempt.reason,
                ),
            )

    async def get_case(self, case_id: str) -> Case | None:
        async with self._session() as conn:
            rows = await _rows(conn, "SELECT data FROM cases WHERE case_id = ?", (case_id,))
        return Case.model_validate_json(rows[0]["data"]) if rows else None

    async def ping(self) -> None:
        async with self._session() as conn:
            await _rows(conn, "SELECT 1")

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    await conn.close()

    async def delivery_log(
        self,
        *,
        case_id: str | None = None,
        distribution_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryAttempt]:
        """Newest first."""
        query = DeliveryLogQuery(case_id=case_id, distribution_id=distribution_id, limit=limit)
        return [
            entry.attempt for entry in await self.delivery_log_entries(query, newest_first=True)
        ]

    async def delivery_log_entries(
        self, query: DeliveryLogQuery, *, newest_first: bool = False
    ) -> list[LoggedAttempt]:
        """Rows matching ``query`` with their ids: oldest first (a tail), or newest first."""
        where: list[str] = ["id > ?"]
        params: list[object] = [query.after_id]
        equal = {
            "case_id": query.case_id,
            "distribution_id": query.distribution_id,
            "recipient": query.recipient,
            "outcome": query.outcome.value if query.outcome else None,
        }
        for column, value in equal.items():
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            where.append("at >= ?")
            params.append(_to_text(query.since))
        if query.until is not None:
            where.append("at < ?")
            params.append(_to_text(query.until))
        order = "DESC" if newest_first else "ASC"
        sql = f"{_SELECT_ATTEMPTS}WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ?"
        async with self._session() as conn:
            rows = await _rows(conn, sql, (*params, query.limit))
        return [
            LoggedAttempt(
                log_id=row["id"],
                attempt=DeliveryAttempt(
                    distribution_id=row["distribution_id"],
                    case_id=row["case_id"],
                    recipient=row["recipient"],
                    attempt=row["attempt"],
                    at=_from_text(row["at"]),
                    outcome=AttemptOutcome(row["outcome"]),
                    latency_ms=row["latency_ms"],
                    status_code=row["status_code"],
                    error_class=row["error_class"],
                    next_try_at=_opt_from_text(row["next_try_at"]),
                    reason=row["reason"],
                ),
            )
            for row in rows
        ]

    async def count_cases(self) -> int:
        async with self._session() as conn:
            rows = await _rows(conn, "SELECT COUNT(*) FROM cases")
        return int(rows[0][0])

    async def quarantined(self, limit: int = 100) -> list[dict[str, object]]:
        async with self._session() as conn:
            rows = await _rows(
                conn,
                "SELECT id, received_at, source, reason, content_type, errors FROM quarantine "
                "ORDER BY received_at DESC, id LIMIT ?",
                (limit,),
            )
        return [
            {
                "id": row["id"],
                "received_at": _from_text(row["received_at"]),
                "source": row["source"],
                "reason": row["reason"],
                "content_type": row["content_type"],
                "errors": json.loads(row["errors"]),
            }
            for row in rows
        ]

    async def outbox_lag(self) -> int:
        async with self._session() as conn:
            rows = await _rows(conn, "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        return int(rows[0][0])

    # ---- Delivery: per-case order, the parking lot, receipts (issue 3) ----

    async def settle(
        self,
        *,
        distribution_id: str,
        recipient: str,
        case_id: str,
        sequence: int,
        outcome: AttemptOutcome,
        at: datetime,
    ) -> None:
        async with self._session() as conn, _transaction(conn):
            await _run(
                conn,
                "INSERT INTO delivery_settled "
                "(distribution_id, recipient, case_id, sequence, outcome, at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (distribution_id, recipient) "
                "DO UPDATE SET outcome = excluded.outcome, at = excluded.at",
                (distribution_id, recipient, case_id, sequence, outcome.value, _to_text(at)),
            )

    async def earlier_unsettled(self, *, case_id: str, recipient: str, sequence: int) -> str | None:
        async with self._session() as conn:
            rows = await _rows(
                conn,
                "SELECT o.message_id FROM outbox o WHERE o.case_id = ? AND o.destination = ? "
                "AND o.routing_key = ? AND o.sequence < ? AND NOT EXISTS ("
                "SELECT 1 FROM delivery_settled s "
                "WHERE s.distribution_id = o.message_id AND s.recipient = ?) "
                "ORDER BY o.sequence, o.id LIMIT 1",
                (case_id, Destination.DELIVER.value, recipient, sequence, recipient),
            )
        return str(rows[0]["message_id"]) if rows else None

    async def enqueue_outbound(self, messages: Sequence[OutboundMessage]) -> None:
        if not messages:
            return
        created_at = _to_text(datetime.now(UTC))
        async with self._session() as conn, _transaction(conn):
            cursor = await conn.executemany(
                "INSERT INTO outbox (created_at, destination, routing_key, message_id, case_id, "
                "sequence, deadline_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        created_at,
                        m.destination.value,
                        m.routing_key,
                        m.message_id,
                        m.case_id,
                        m.sequence,
                        _opt_text(m.deadline_at),
                        m.body,
                    )
                    for m in messages
                ],
            )
            await cursor.close()

    async def park(self, message: ParkedMessage) -> bool:
        async with self._session() as conn, _transaction(conn):
            waiting = await _rows(
                conn,
                "SELECT 1 FROM parked WHERE distribution_id = ? AND recipient = ? "
                "AND replayed_at IS NULL",
                (message.distribution_id, message.recipient),
            )
            if waiting:
                return False
            parked_at = _to_text(message.parked_at)
            await _run(
                conn,
                "INSERT INTO parked (distribution_id, recipient, case_id, sequence, deadline_at, "
                "attempt, tries, reason, error_class, parked_at, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message.distribution_id,
                    message.recipient,
                    message.case_id,
                    message.sequence,
                    _opt_text(message.deadline_at),
                    message.attempt,
                    message.tries,
                    message.reason,
                    message.error_class,
                    parked_at,
                    message.body,
                ),
            )
            await _run(
                conn,
                "INSERT INTO delivery_settled "
                "(distribution_id, recipient, case_id, sequence, outcome, at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (distribution_id, recipient) DO NOTHING",
                (
                    message.distribution_id,
                    message.recipient,
                    message.case_id,
                    message.sequence,
                    AttemptOutcome.PARKED.value,
                    parked_at,
                ),
            )
        return True

    async def parked(self, selector: ParkedSelector, limit: int = 1000) -> list[ParkedMessage]:
        where = ["replayed_at IS NULL"]
        params: list[object] = []
        for column, value in (
            ("distribution_id", selector.distribution_id),
            ("case_id", selector.case_id),
            ("recipient", selector.recipient),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT * FROM parked WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"  # noqa: S608 - fixed column names
        async with self._session() as conn:
            rows = await _rows(conn, sql, (*params, limit))
        return [
            ParkedMessage(
                parked_id=row["id"],
                distribution_id=row["distribution_id"],
                recipient=row["recipient"],
                case_id=row["case_id"],
                sequence=row["sequence"],
                deadline_at=_opt_from_text(row["deadline_at"]),
                attempt=row["attempt"],
                tries=row["tries"],
                reason=row["reason"],
                error_class=row["error_class"],
                parked_at=_from_text(row["parked_at"]),
                body=bytes(row["body"]),
                replayed_at=_opt_from_text(row["replayed_at"]),
            )
            for row in rows
        ]

    async def mark_replayed(self, parked_ids: Sequence[int], at: datetime) -> None:
        if not parked_ids:
            return
        async with self._session() as conn, _transaction(conn):
            for parked_id in parked_ids:
                await _run(
                    conn,
                    "DELETE FROM delivery_settled WHERE outcome IN (?, ?) AND EXISTS ("
                    "SELECT 1 FROM parked p WHERE p.id = ? AND p.replayed_at IS NULL "
                    "AND p.distribution_id = delivery_settled.distribution_id "
                    "AND p.recipient = delivery_settled.recipient)",
                    (AttemptOutcome.PARKED.value, AttemptOutcome.GONE.value, parked_id),
                )
                await _run(
                    conn,
                    "UPDATE parked SET replayed_at = ? WHERE id = ? AND replayed_at IS NULL",
                    (_to_text(at), parked_id),
                )

    async def record_receipt(self, receipt: ReceiptRecord) -> tuple[ReceiptRecord, bool]:
        async with self._session() as conn, _transaction(conn):
            before = await _rows(
                conn, "SELECT * FROM receipts WHERE webhook_id = ?", (receipt.webhook_id,)
            )
            if before:
                return self._receipt_of(before[0]), True
            found = await _rows(
                conn,
                "SELECT case_id FROM outbox WHERE message_id = ?",
                (receipt.distribution_id,),
            )
            case_id = str(found[0]["case_id"]) if found else None
            await _run(
                conn,
                "INSERT INTO receipts (webhook_id, distribution_id, case_id, status, at, "
                "received_at, by_role, by_id, ticket, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    receipt.webhook_id,
                    receipt.distribution_id,
                    case_id,
                    receipt.status,
                    _to_text(receipt.at),
                    _to_text(receipt.received_at),
                    receipt.by_role,
                    receipt.by_id,
                    receipt.ticket,
                    receipt.reason,
                ),
            )
        return replace(receipt, case_id=case_id), False

    async def receipts(self, *, case_id: str) -> list[ReceiptRecord]:
        async with self._session() as conn:
            rows = await _rows(
                conn, "SELECT * FROM receipts WHERE case_id = ? ORDER BY received_at", (case_id,)
            )
        return [self._receipt_of(row) for row in rows]

    @staticmethod
    def _receipt_of(row: sqlite3.Row) -> ReceiptRecord:
        return ReceiptRecord(
            webhook_id=row["webhook_id"],
            distribution_id=row["distribution_id"],
            case_id=row["case_id"],
            status=row["status"],
            at=_from_text(row["at"]),
            received_at=_from_text(row["received_at"]),
            by_role=row["by_role"],
            by_id=row["by_id"],
            ticket=row["ticket"],
            reason=row["reason"],
        )

    # --- Security (issue 7): signed inbound messages already taken, against replays ---

    async def remember_webhook_id(
        self, webhook_id: str, *, signed_at: int, seen_at: datetime, keep_until: datetime
    ) -> bool:
        """Record a verified inbound message; ``False`` when it was taken before.

        Rows whose ``keep_until`` has passed are dropped on the way: their signatures
        are outside the tolerance and would be refused anyway.
        """
        async with self._session() as conn, _transaction(conn):
            await _run(
                conn, "DELETE FROM seen_webhook_ids WHERE keep_until < ?", (_to_text(seen_at),)
            )
            cursor = await conn.execute(
                "INSERT INTO seen_webhook_ids (webhook_id, signed_at, seen_at, keep_until) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (webhook_id, signed_at, _to_text(seen_at), _to_text(keep_until)),
            )
            inserted = cursor.rowcount == 1
            await cursor.close()
        return inserted

    # ---- SOP workflow: timers, each case's place in the SOP, its history (issue 4) ----

    @staticmethod
    async def _insert_timers(conn: aiosqlite.Connection, timers: Sequence[Timer]) -> None:
        if not timers:
            return
        cursor = await conn.executemany(
            "INSERT INTO timers (timer_id, kind, case_id, subject, fire_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    t.timer_id,
                    t.kind,
                    t.case_id,
                    t.subject,
                    _to_text(t.fire_at),
                    json.dumps(dict(t.data)),
                )
                for t in timers
            ],
        )
        await cursor.close()

    @staticmethod
    async def _cancel_timers(
        conn: aiosqlite.Connection, subjects: Sequence[str], at: datetime
    ) -> int:
        cancelled = 0
        for subject in subjects:
            cursor = await conn.execute(
                "UPDATE timers SET cancelled_at = ? "
                "WHERE subject = ? AND fired_at IS NULL AND cancelled_at IS NULL",
                (_to_text(at), subject),
            )
            cancelled += cursor.rowcount
            await cursor.close()
        return cancelled

    async def schedule_timers(self, timers: Sequence[Timer]) -> None:
        async with self._session() as conn, _transaction(conn):
            await self._insert_timers(conn, timers)

    async def cancel_timers(self, *, subject: str) -> int:
        async with self._session() as conn, _transaction(conn):
            return await self._cancel_timers(conn, [subject], datetime.now(UTC))

    async def fire_due_timers(
        self,
        now: datetime,
        limit: int,
        handle: Callable[[Timer], Sequence[OutboundMessage]],
    ) -> list[Timer]:
        fired: list[Timer] = []
        async with self._session() as conn, _transaction(conn):
            # BEGIN IMMEDIATE holds the write lock from here to COMMIT, so another process
            # sees these timers fired or not at all.
            rows = await _rows(
                conn,
                "SELECT timer_id, kind, case_id, subject, fire_at, data FROM timers "
                "WHERE fired_at IS NULL AND cancelled_at IS NULL AND fire_at <= ? "
                "ORDER BY fire_at, timer_id LIMIT ?",
                (_to_text(now), limit),
            )
            for row in rows:
                timer = Timer(
                    timer_id=row["timer_id"],
                    kind=row["kind"],
                    case_id=row["case_id"],
                    subject=row["subject"],
                    fire_at=_from_text(row["fire_at"]),
                    data=json.loads(row["data"]),
                )
                await self._insert_outbox(conn, handle(timer), now)
                await _run(
                    conn,
                    "UPDATE timers SET fired_at = ? WHERE timer_id = ?",
                    (_to_text(now), timer.timer_id),
                )
                fired.append(timer)
        return fired

    @staticmethod
    async def _insert_outbox(
        conn: aiosqlite.Connection, messages: Sequence[OutboundMessage], at: datetime
    ) -> None:
        if not messages:
            return
        cursor = await conn.executemany(
            "INSERT INTO outbox (created_at, destination, routing_key, message_id, case_id, "
            "sequence, deadline_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    _to_text(at),
                    m.destination.value,
                    m.routing_key,
                    m.message_id,
                    m.case_id,
                    m.sequence,
                    _opt_text(m.deadline_at),
                    m.body,
                )
                for m in messages
            ],
        )
        await cursor.close()

    async def timers_of(self, case_id: str) -> list[tuple[Timer, datetime | None]]:
        """Every timer of a case, fired or not, with when it fired (for ops and tests)."""
        async with self._session() as conn:
            rows = await _rows(
                conn,
                "SELECT timer_id, kind, case_id, subject, fire_at, data, fired_at FROM timers "
                "WHERE case_id = ? ORDER BY fire_at, timer_id",
                (case_id,),
            )
        return [
            (
                Timer(
                    timer_id=row["timer_id"],
                    kind=row["kind"],
                    case_id=row["case_id"],
                    subject=row["subject"],
                    fire_at=_from_text(row["fire_at"]),
                    data=json.loads(row["data"]),
                ),
                _opt_from_text(row["fired_at"]),
            )
            for row in rows
        ]

    async def case_snapshot(self, case_id: str) -> CaseSnapshot | None:
        async with self._session() as conn:
            return await self._snapshot(conn, case_id)

    async def apply_case_event(
        self, case_id: str, decide: Callable[[CaseSnapshot], CaseDecision]
    ) -> CaseDecision | None:
        async with self._session() as conn, _transaction(conn):
            snapshot = await self._snapshot(conn, case_id)
            if snapshot is None:
                return None
            decision = decide(snapshot)
            now = decision.entry.recorded_at
            await self._write_workflow(conn, case_id, decision.workflow, now)
            if decision.case is not None:
                await _run(
                    conn,
                    "UPDATE cases SET data = ?, needs_other_agencies = ? WHERE case_id = ?",
                    (
                        decision.case.model_dump_json(),
                        int(decision.case.needs_other_agencies),
                        case_id,
                    ),
                )
            entry = decision.entry
            await _run(
                conn,
                "INSERT INTO case_events (case_id, type, at, recorded_at, by_role, by_id, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    case_id,
                    entry.type.value,
                    _to_text(entry.at),
                    _to_text(entry.recorded_at),
                    entry.by_role.value,
                    entry.by_id,
                    json.dumps(dict(entry.details)),
                ),
            )
            await self._cancel_timers(conn, decision.cancel_subjects, now)
            await self._insert_timers(conn, decision.timers)
            await self._insert_outbox(conn, decision.outgoing, now)
        return decision

    async def case_snapshots(
        self,
        *,
        received_between: tuple[datetime, datetime] | None = None,
        ended_between: tuple[datetime, datetime] | None = None,
    ) -> list[CaseSnapshot]:
        """Cases received (or ended) in ``[from, to)``, oldest first."""
        if received_between is not None:
            sql = "SELECT c.case_id FROM cases c WHERE c.received_at >= ? AND c.received_at < ? "
            bounds = received_between
        elif ended_between is not None:
            sql = (
                "SELECT c.case_id FROM cases c JOIN case_workflow w ON w.case_id = c.case_id "
                "WHERE w.ended_at >= ? AND w.ended_at < ? "
            )
            bounds = ended_between
        else:
            raise ValueError("give received_between or ended_between")
        async with self._session() as conn:
            rows = await _rows(
                conn,
                sql + "ORDER BY c.received_at, c.case_id",
                (_to_text(bounds[0]), _to_text(bounds[1])),
            )
            snapshots = [await self._snapshot(conn, row["case_id"]) for row in rows]
        return [s for s in snapshots if s is not None]

    @staticmethod
    async def _write_workflow(
        conn: aiosqlite.Connection, case_id: str, flow: Workflow, now: datetime
    ) -> None:
        await _run(
            conn,
            "INSERT INTO case_workflow (case_id, state, ended_at, data, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET state = excluded.state, "
            "ended_at = excluded.ended_at, data = excluded.data, updated_at = excluded.updated_at",
            (
                case_id,
                flow.state.value,
                _opt_text(flow.ended_at),
                _workflow_json(flow),
                _to_text(now),
            ),
        )
        await _run(
            conn, "UPDATE cases SET state = ? WHERE case_id = ?", (flow.state.value, case_id)
        )

    @staticmethod
    async def _snapshot(conn: aiosqlite.Connection, case_id: str) -> CaseSnapshot | None:
        rows = await _rows(
            conn,
            "SELECT c.data, w.data AS workflow FROM cases c "
            "LEFT JOIN case_workflow w ON w.case_id = c.case_id WHERE c.case_id = ?",
            (case_id,),
        )
        if not rows:
            return None
        case = Case.model_validate_json(rows[0]["data"])
        raw_flow = rows[0]["workflow"]
        history = tuple(
            HistoryEntry(
                type=EventType(row["type"]),
                at=_from_text(row["at"]),
                recorded_at=_from_text(row["recorded_at"]),
                by_role=StaffRole(row["by_role"]),
                by_id=row["by_id"],
                details=json.loads(row["details"]),
            )
            for row in await _rows(
                conn,
                "SELECT type, at, recorded_at, by_role, by_id, details FROM case_events "
                "WHERE case_id = ? ORDER BY id",
                (case_id,),
            )
        )
        stream = await _rows(
            conn,
            "SELECT message_id, sequence FROM outbox WHERE case_id = ? AND destination = ? "
            "AND routing_key = ? ORDER BY sequence, id",
            (case_id, Destination.DELIVER.value, C112_RECIPIENT),
        )
        marks: dict[tuple[int, str], datetime] = {}
        for row in await _rows(
            conn,
            "SELECT kind, data, fired_at FROM timers WHERE case_id = ? AND fired_at IS NOT NULL "
            "AND kind IN (?, ?)",
            (case_id, *SLA_KINDS),
        ):
            step = int(json.loads(row["data"])["step"])
            fired_at = _from_text(row["fired_at"])
            key = (step, row["kind"])
            marks[key] = min(marks.get(key, fired_at), fired_at)
        return CaseSnapshot(
            case=case,
            workflow=None if raw_flow is None else _workflow_from_json(raw_flow),
            history=history,
            c112=C112Stream(
                last_sequence=max((int(r["sequence"]) for r in stream), default=0),
                distribution_ids=tuple(str(r["message_id"]) for r in stream),
            ),
            sla_marks=marks,
        )

    # ---- Partner subscriptions (issue 5) ----

    async def add_subscription(self, subscription: Subscription) -> None:
        async with self._session() as conn, _transaction(conn):
            await _run(
                conn,
                "INSERT INTO subscriptions (subscription_id, agency_id, role, patterns, mode, "
                "url, secret, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    subscription.subscription_id,
                    subscription.agency_id,
                    subscription.role.value,
                    json.dumps(list(subscription.patterns)),
                    subscription.mode.value,
                    subscription.url,
                    subscription.secret,
                    subscription.status.value,
                    _to_text(subscription.created_at),
                    _to_text(subscription.updated_at),
                ),
            )

    async def subscriptions(self) -> list[Subscription]:
        async with self._session() as conn:
            rows = await _rows(conn, "SELECT * FROM subscriptions ORDER BY created_at, rowid")
        return [self._subscription_of(row) for row in rows]

    async def subscription(self, subscription_id: str) -> Subscription | None:
        async with self._session() as conn:
            rows = await _rows(
                conn, "SELECT * FROM subscriptions WHERE subscription_id = ?", (subscription_id,)
            )
        return self._subscription_of(rows[0]) if rows else None

    async def set_subscription_status(
        self, subscription_id: str, status: SubscriptionStatus, at: datetime
    ) -> Subscription | None:
        async with self._session() as conn, _transaction(conn):
            await _run(
                conn,
                "UPDATE subscriptions SET status = ?, updated_at = ? WHERE subscription_id = ?",
                (status.value, _to_text(at), subscription_id),
            )
            rows = await _rows(
                conn, "SELECT * FROM subscriptions WHERE subscription_id = ?", (subscription_id,)
            )
        return self._subscription_of(rows[0]) if rows else None

    async def remove_subscription(self, subscription_id: str) -> bool:
        async with self._session() as conn, _transaction(conn):
            found = await _rows(
                conn, "SELECT 1 FROM subscriptions WHERE subscription_id = ?", (subscription_id,)
            )
            await _run(
                conn, "DELETE FROM subscriptions WHERE subscription_id = ?", (subscription_id,)
            )
        return bool(found)

    @staticmethod
    def _subscription_of(row: sqlite3.Row) -> Subscription:
        return Subscription(
            subscription_id=row["subscription_id"],
            agency_id=row["agency_id"],
            role=RecipientRole(row["role"]),
            patterns=tuple(json.loads(row["patterns"])),
            mode=DeliveryMode(row["mode"]),
            url=row["url"],
            secret=row["secret"],
            status=SubscriptionStatus(row["status"]),
            created_at=_from_text(row["created_at"]),
            updated_at=_from_text(row["updated_at"]),
        )


def _workflow_json(flow: Workflow) -> str:
    return json.dumps(
        {
            "state": flow.state.value,
            "received_at": _to_text(flow.received_at),
            "scale": flow.scale,
            "coordination": flow.coordination,
            "uptd_ppa_coordinates": flow.uptd_ppa_coordinates,
            "status_reports": flow.status_reports,
            "duplicate_of": flow.duplicate_of,
            "ended_at": _opt_text(flow.ended_at),
            "steps": [
                {
                    "step": r.step,
                    "entered_at": _to_text(r.entered_at),
                    "due_at": _to_text(r.due_at),
                    "done_at": _opt_text(r.done_at),
                    "skipped_at": _opt_text(r.skipped_at),
                }
                for r in flow.steps
            ],
        }
    )


def _workflow_from_json(text: str) -> Workflow:
    data = json.loads(text)
    return Workflow(
        state=CaseState(data["state"]),
        received_at=_from_text(data["received_at"]),
        scale=float(data["scale"]),
        coordination=bool(data["coordination"]),
        uptd_ppa_coordinates=bool(data["uptd_ppa_coordinates"]),
        status_reports=int(data["status_reports"]),
        duplicate_of=data["duplicate_of"],
        ended_at=_opt_from_text(data["ended_at"]),
        steps=tuple(
            StepRecord(
                step=int(r["step"]),
                entered_at=_from_text(r["entered_at"]),
                due_at=_from_text(r["due_at"]),
                done_at=_opt_from_text(r["done_at"]),
                skipped_at=_opt_from_text(r["skipped_at"]),
            )
            for r in data["steps"]
        ),
    )
