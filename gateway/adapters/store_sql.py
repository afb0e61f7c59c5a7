"""The store: cases, outbox, delivery log, timers, workflow and subscriptions, in SQL
that runs unchanged on SQLite (the embedded default) and PostgreSQL.

What differs between the two is kept in ``gateway.adapters.sql_db``; every driver error
comes out of it as ``StoreUnavailable`` (or ``IntegrityViolation``).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from contracts.case import Case
from contracts.envelope import RecipientRole
from contracts.ops import AtRiskKind
from contracts.subscription import DeliveryMode, SubscriptionStatus
from contracts.workflow import CaseState, EventType, StaffRole
from gateway import audit, escalation, retention
from gateway.adapters.sealing import Sealer, row_aad
from gateway.adapters.sql_db import (
    Database,
    IntegrityViolation,
    Row,
    Session,
    connect,
    translate_ddl,
)
from gateway.case_messages import CaseDecision
from gateway.errors import StoreUnavailable
from gateway.model import (
    AcceptedReport,
    AtRisk,
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
    RecipientActivity,
    Timer,
    TimerEffects,
)
from gateway.partners import Subscription
from gateway.routing import C112_RECIPIENT
from gateway.workflow import (
    SLA_BREACHED,
    SLA_KINDS,
    SLA_WARNING,
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


async def _run(conn: Session, sql: str, params: Sequence[object] = ()) -> int:
    """Execute one statement; answers how many rows it changed."""
    return await conn.run(sql, params)


async def _rows(conn: Session, sql: str, params: Sequence[object] = ()) -> list[Row]:
    return await conn.rows(sql, params)


def _transaction(
    conn: Session, *, durable: bool = True
) -> contextlib.AbstractAsyncContextManager[None]:
    """A write transaction, alone among writers; rolled back on any exception."""
    return conn.transaction(durable=durable)


async def _apply_migrations(conn: Session, migrations: Iterable[Migration], dialect: str) -> None:
    async with _transaction(conn):
        await _run(
            conn,
            translate_ddl(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                dialect,
            ),
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
                await _run(conn, translate_ddl(statement, dialect))
            await _run(
                conn,
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, _to_text(datetime.now(UTC))),
            )


_OUTBOX_ROW = (
    "SELECT id, destination, routing_key, message_id, case_id, sequence, deadline_at, body "
    "FROM outbox"
)


def _outbox_row(row: Row, sealer: Sealer) -> OutboxRow:
    return OutboxRow(
        id=row["id"],
        message=OutboundMessage(
            destination=Destination(row["destination"]),
            routing_key=row["routing_key"],
            message_id=row["message_id"],
            case_id=row["case_id"],
            sequence=row["sequence"],
            body=sealer.open(bytes(row["body"]), _outbox_aad(row["message_id"])),
            deadline_at=_opt_from_text(row["deadline_at"]),
        ),
    )


def _outbox_aad(message_id: str) -> bytes:
    return row_aad("outbox", "body", message_id)


def _parked_aad(distribution_id: str, recipient: str) -> bytes:
    return row_aad("parked", "body", f"{distribution_id}\x00{recipient}")


def _event_aad(case_id: str, recorded_at: str, event_type: str) -> bytes:
    return row_aad("case_events", "sealed_details", f"{case_id}\x00{recorded_at}\x00{event_type}")


PURGED = b""
"""What a purged raw report, outbox or quarantine body is left holding."""

# Who the audit log names for changes only one role may ask for (the routes say so):
# replaying parked messages (ops API, `gateway replay`) and subscription changes (admin).
OPS_ROLE = "ops"
ADMIN_ROLE = "admin"


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


class SqlStore:
    """The ``Store`` port on SQLite or PostgreSQL (see ``gateway.adapters.sql_db``).

    Beyond the port, for ops and tests:

    - ``delivery_log(*, case_id=None, distribution_id=None, limit=100)``: delivery
      attempts, newest first, optionally of one case and/or one distribution.
    - ``count_cases()``: how many cases are kept.
    - ``quarantined(limit=100)``: refused inputs, newest first, as dicts with ``id``,
      ``received_at``, ``source``, ``reason``, ``content_type`` and ``errors`` (a list of
      ``{pointer, detail}``); never the raw bytes.
    - ``outbox_lag()``: how many outbox rows are not yet published.
    """

    def __init__(self, db: Database, sealer: Sealer) -> None:
        """Use ``connect`` (or ``open``); this takes a database whose schema is current."""
        self._db = db
        self._sealer = sealer

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @classmethod
    async def connect(cls, url: str, *, sealer: Sealer, busy_timeout_ms: int = 5000) -> SqlStore:
        """Open (creating if needed) the database at ``url`` and bring its schema up to date."""
        db = await connect(url, busy_timeout_ms=busy_timeout_ms)
        try:
            async with db.session() as conn:
                await _apply_migrations(conn, load_migrations(), db.dialect)
        except BaseException:
            await db.close()
            raise
        return cls(db, sealer)

    @classmethod
    async def open(cls, path: Path, *, sealer: Sealer, busy_timeout_ms: int = 5000) -> SqlStore:
        """The SQLite file at ``path``."""
        return await cls.connect(
            f"sqlite:///{path}", sealer=sealer, busy_timeout_ms=busy_timeout_ms
        )

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[Session]:
        async with self._db.session() as conn:
            yield conn

    async def accept_report(self, report: AcceptedReport) -> IntakeResult:
        async with self._session() as conn:
            try:
                async with _transaction(conn):
                    existing = await self._existing(conn, report)
                    if existing is not None:
                        return existing
                    await self._insert_report(conn, report)
            except IntegrityViolation as exc:
                existing = await self._existing(conn, report)
                if existing is None:
                    raise StoreUnavailable(str(exc)) from exc
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
    async def _existing(conn: Session, report: AcceptedReport) -> IntakeResult | None:
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

    async def _insert_report(self, conn: Session, report: AcceptedReport) -> None:
        case = report.case
        received_at = _to_text(case.received_at)
        await _run(
            conn,
            "INSERT INTO cases (case_id, source_system, source_reference, received_at, "
            "kecamatan_code, risk_level, needs_other_agencies, c112_deadline_at, data, sealed) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                case.case_id,
                report.source_system,
                report.source_reference,
                received_at,
                case.location.kecamatan.code,
                case.risk.level.value,
                int(case.needs_other_agencies),
                _opt_text(report.c112_deadline_at),
                *self._case_columns(case),
            ),
        )
        await _run(
            conn,
            "INSERT INTO reports (source_system, source_reference, received_at, raw, case_id) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                report.source_system,
                report.source_reference,
                received_at,
                self._sealer.seal(report.raw, row_aad("reports", "raw", case.case_id)),
                case.case_id,
            ),
        )
        await self._insert_outbox(conn, report.outgoing, case.received_at)
        await self._insert_timers(conn, report.timers)
        await self._append_audit(
            conn,
            audit.AuditEntry(
                at=case.received_at,
                actor=audit.Actor(report.source_system),
                action=audit.CASE_RECEIVED,
                case_id=case.case_id,
                details={"risk": case.risk.level.value, "kecamatan": case.location.kecamatan.code},
            ),
        )

    def _case_columns(self, case: Case) -> tuple[str, bytes]:
        """``data`` (the S0/S1 part, plain) and ``sealed`` (the whole case)."""
        return (
            retention.public_part(case).model_dump_json(),
            self._sealer.seal(
                case.model_dump_json().encode(), row_aad("cases", "sealed", case.case_id)
            ),
        )

    def _case_of(self, case_id: str, data: str, sealed: bytes | None) -> Case:
        """The whole case while it is sealed beside its S0/S1 part; after a purge, that part."""
        if sealed is None:
            return Case.model_validate_json(data)
        return Case.model_validate_json(
            self._sealer.open(bytes(sealed), row_aad("cases", "sealed", case_id))
        )

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
                    self._sealer.seal(item.raw, row_aad("quarantine", "raw", quarantine_id)),
                ),
            )
        return quarantine_id

    async def pending_outbox(self, limit: int) -> list[OutboxRow]:
        """Unpublished rows, oldest first, claimed or not (for ops and tests)."""
        async with self._session() as conn:
            rows = await _rows(
                conn, f"{_OUTBOX_ROW} WHERE published_at IS NULL ORDER BY id LIMIT ?", (limit,)
            )
        return [_outbox_row(row, self._sealer) for row in rows]

    async def claim_outbox(
        self, claimant: str, limit: int, *, now: datetime, lease_s: float
    ) -> list[OutboxRow]:
        until = _to_text(now + timedelta(seconds=lease_s))
        async with self._session() as conn:
            if not await _rows(conn, "SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT 1"):
                return []  # no write lock taken for nothing
        async with self._session() as conn, _transaction(conn, durable=False):
            await _run(
                conn,
                "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id IN ("
                "SELECT id FROM outbox WHERE published_at IS NULL AND (claimed_by IS NULL "
                "OR claimed_by = ? OR claimed_until < ?) ORDER BY id LIMIT ?)",
                (claimant, until, claimant, _to_text(now), limit),
            )
            rows = await _rows(
                conn,
                f"{_OUTBOX_ROW} WHERE published_at IS NULL AND claimed_by = ? "
                "AND claimed_until = ? ORDER BY id",
                (claimant, until),
            )
        return [_outbox_row(row, self._sealer) for row in rows]

    async def release_outbox(self, claimant: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with self._session() as conn, _transaction(conn, durable=False):
            await conn.run_many(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL "
                "WHERE id = ? AND claimed_by = ? AND published_at IS NULL",
                [(i, claimant) for i in ids],
            )

    async def mark_published(self, ids: Sequence[int], at: datetime) -> None:
        if not ids:
            return
        published_at = _to_text(at)
        async with self._session() as conn, _transaction(conn, durable=False):
            await conn.run_many(_MARK_PUBLISHED, [(published_at, i) for i in ids])

    async def record_attempt(self, attempt: DeliveryAttempt) -> None:
        async with self._session() as conn, _transaction(conn):
            await self._insert_attempts(conn, (attempt,))

    @staticmethod
    async def _insert_attempts(conn: Session, attempts: Sequence[DeliveryAttempt]) -> None:
        for attempt in attempts:
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
            rows = await _rows(conn, "SELECT data, sealed FROM cases WHERE case_id = ?", (case_id,))
        return self._case_of(case_id, rows[0]["data"], rows[0]["sealed"]) if rows else None

    async def ping(self) -> None:
        async with self._session() as conn:
            await _rows(conn, "SELECT 1")

    async def close(self) -> None:
        await self._db.close()

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
        async with self._session() as conn, _transaction(conn):
            await self._insert_outbox(conn, messages, datetime.now(UTC))

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
                    self._sealer.seal(
                        message.body, _parked_aad(message.distribution_id, message.recipient)
                    ),
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
                body=self._sealer.open(
                    bytes(row["body"]), _parked_aad(row["distribution_id"], row["recipient"])
                ),
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
                replayed = await _rows(
                    conn,
                    "SELECT distribution_id, recipient, case_id FROM parked "
                    "WHERE id = ? AND replayed_at IS NULL",
                    (parked_id,),
                )
                await _run(
                    conn,
                    "UPDATE parked SET replayed_at = ? WHERE id = ? AND replayed_at IS NULL",
                    (_to_text(at), parked_id),
                )
                for row in replayed:
                    await self._append_audit(
                        conn,
                        audit.AuditEntry(
                            at=at,
                            actor=audit.Actor(OPS_ROLE),
                            action=audit.DELIVERY_REPLAYED,
                            case_id=row["case_id"],
                            details={
                                "distribution_id": row["distribution_id"],
                                "recipient": row["recipient"],
                            },
                        ),
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
    def _receipt_of(row: Row) -> ReceiptRecord:
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
            inserted = (
                await _run(
                    conn,
                    "INSERT INTO seen_webhook_ids (webhook_id, signed_at, seen_at, keep_until) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (webhook_id, signed_at, _to_text(seen_at), _to_text(keep_until)),
                )
                == 1
            )
        return inserted

    # ---- SOP workflow: timers, each case's place in the SOP, its history (issue 4) ----

    async def _insert_timers(self, conn: Session, timers: Sequence[Timer]) -> None:
        """The message copy an escalation timer carries (``data["body"]``) is sealed apart."""
        if not timers:
            return
        rows = []
        for t in timers:
            data = dict(t.data)
            body = data.pop("body", None)
            sealed = (
                None
                if body is None
                else self._sealer.seal(str(body).encode(), row_aad("timers", "body", t.timer_id))
            )
            rows.append(
                (
                    t.timer_id,
                    t.kind,
                    t.case_id,
                    t.subject,
                    _to_text(t.fire_at),
                    json.dumps(data),
                    sealed,
                )
            )
        await conn.run_many(
            "INSERT INTO timers (timer_id, kind, case_id, subject, fire_at, data, sealed_body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _timer_of(self, row: Row) -> Timer:
        data = json.loads(row["data"])
        if row["sealed_body"] is not None:
            aad = row_aad("timers", "body", row["timer_id"])
            data["body"] = self._sealer.open(bytes(row["sealed_body"]), aad).decode()
        return Timer(
            timer_id=row["timer_id"],
            kind=row["kind"],
            case_id=row["case_id"],
            subject=row["subject"],
            fire_at=_from_text(row["fire_at"]),
            data=data,
        )

    @staticmethod
    async def _cancel_timers(conn: Session, subjects: Sequence[str], at: datetime) -> int:
        cancelled = 0
        for subject in subjects:
            cancelled += await _run(
                conn,
                "UPDATE timers SET cancelled_at = ? "
                "WHERE subject = ? AND fired_at IS NULL AND cancelled_at IS NULL",
                (_to_text(at), subject),
            )
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
        handle: Callable[[Timer], TimerEffects],
    ) -> list[Timer]:
        fired: list[Timer] = []
        async with self._session() as conn, _transaction(conn):
            # The write transaction is alone among writers from here to COMMIT, so another process
            # sees these timers fired or not at all.
            rows = await _rows(
                conn,
                "SELECT timer_id, kind, case_id, subject, fire_at, data, sealed_body FROM timers "
                "WHERE fired_at IS NULL AND cancelled_at IS NULL AND fire_at <= ? "
                "ORDER BY fire_at, timer_id LIMIT ?",
                (_to_text(now), limit),
            )
            for row in rows:
                timer = self._timer_of(row)
                effects = handle(timer)
                await self._insert_outbox(conn, effects.outgoing, now)
                await self._insert_attempts(conn, effects.delivery_log)
                await _run(
                    conn,
                    "UPDATE timers SET fired_at = ? WHERE timer_id = ?",
                    (_to_text(now), timer.timer_id),
                )
                fired.append(timer)
        return fired

    async def _insert_outbox(
        self, conn: Session, messages: Sequence[OutboundMessage], at: datetime
    ) -> None:
        if not messages:
            return
        await conn.run_many(
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
                    self._sealer.seal(m.body, _outbox_aad(m.message_id)),
                )
                for m in messages
            ],
        )

    async def timers_of(self, case_id: str) -> list[tuple[Timer, datetime | None]]:
        """Every timer of a case, fired or not, with when it fired (for ops and tests)."""
        async with self._session() as conn:
            rows = await _rows(
                conn,
                "SELECT timer_id, kind, case_id, subject, fire_at, data, sealed_body, fired_at "
                "FROM timers WHERE case_id = ? ORDER BY fire_at, timer_id",
                (case_id,),
            )
        return [(self._timer_of(row), _opt_from_text(row["fired_at"])) for row in rows]

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
                    "UPDATE cases SET data = ?, sealed = ?, needs_other_agencies = ? "
                    "WHERE case_id = ?",
                    (
                        *self._case_columns(decision.case),
                        int(decision.case.needs_other_agencies),
                        case_id,
                    ),
                )
            entry = decision.entry
            recorded_at = _to_text(entry.recorded_at)
            public, personal = retention.split_event_details(entry.details)
            sealed = (
                self._sealer.seal(
                    json.dumps(personal).encode(),
                    _event_aad(case_id, recorded_at, entry.type.value),
                )
                if personal
                else None
            )
            await _run(
                conn,
                "INSERT INTO case_events (case_id, type, at, recorded_at, by_role, by_id, "
                "details, sealed_details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case_id,
                    entry.type.value,
                    _to_text(entry.at),
                    recorded_at,
                    entry.by_role.value,
                    entry.by_id,
                    json.dumps(public),
                    sealed,
                ),
            )
            await self._append_audit(
                conn,
                audit.AuditEntry(
                    at=entry.recorded_at,
                    actor=audit.Actor(entry.by_role.value, entry.by_id),
                    action=audit.CASE_EVENT,
                    case_id=case_id,
                    details={"type": entry.type.value, "state": decision.workflow.state.value},
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
    async def _write_workflow(conn: Session, case_id: str, flow: Workflow, now: datetime) -> None:
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

    async def _snapshot(self, conn: Session, case_id: str) -> CaseSnapshot | None:
        rows = await _rows(
            conn,
            "SELECT c.data, c.sealed, w.data AS workflow FROM cases c "
            "LEFT JOIN case_workflow w ON w.case_id = c.case_id WHERE c.case_id = ?",
            (case_id,),
        )
        if not rows:
            return None
        case = self._case_of(case_id, rows[0]["data"], rows[0]["sealed"])
        raw_flow = rows[0]["workflow"]
        history = tuple(
            HistoryEntry(
                type=EventType(row["type"]),
                at=_from_text(row["at"]),
                recorded_at=_from_text(row["recorded_at"]),
                by_role=StaffRole(row["by_role"]),
                by_id=row["by_id"],
                details=self._event_details(case_id, row),
            )
            for row in await _rows(
                conn,
                "SELECT type, at, recorded_at, by_role, by_id, details, sealed_details "
                "FROM case_events WHERE case_id = ? ORDER BY id",
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

    def _event_details(self, case_id: str, row: Row) -> dict[str, object]:
        details: dict[str, object] = json.loads(row["details"])
        if row["sealed_details"] is not None:
            aad = _event_aad(case_id, row["recorded_at"], row["type"])
            details.update(json.loads(self._sealer.open(bytes(row["sealed_details"]), aad)))
        return details

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
            await self._append_audit(
                conn,
                audit.AuditEntry(
                    at=subscription.created_at,
                    actor=audit.Actor(ADMIN_ROLE),
                    action=audit.SUBSCRIPTION_CREATED,
                    details={
                        "subscription_id": subscription.subscription_id,
                        "agency_id": subscription.agency_id,
                        "role": subscription.role.value,
                        "mode": subscription.mode.value,
                    },
                ),
            )

    async def subscriptions(self) -> list[Subscription]:
        async with self._session() as conn:
            rows = await _rows(
                conn, "SELECT * FROM subscriptions ORDER BY created_at, subscription_id"
            )
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
            changed = await _run(
                conn,
                "UPDATE subscriptions SET status = ?, updated_at = ? WHERE subscription_id = ?",
                (status.value, _to_text(at), subscription_id),
            )
            rows = await _rows(
                conn, "SELECT * FROM subscriptions WHERE subscription_id = ?", (subscription_id,)
            )
            if changed:
                await self._append_audit(
                    conn,
                    audit.AuditEntry(
                        at=at,
                        actor=audit.Actor(ADMIN_ROLE),
                        action=audit.SUBSCRIPTION_STATUS,
                        details={"subscription_id": subscription_id, "status": status.value},
                    ),
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
            if found:
                await self._append_audit(
                    conn,
                    audit.AuditEntry(
                        at=datetime.now(UTC),
                        actor=audit.Actor(ADMIN_ROLE),
                        action=audit.SUBSCRIPTION_REMOVED,
                        details={"subscription_id": subscription_id},
                    ),
                )
        return bool(found)

    @staticmethod
    def _subscription_of(row: Row) -> Subscription:
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

    # ---- Ops console (issue 6) ----

    async def recipient_activity(self, since: datetime) -> list[RecipientActivity]:
        """Per recipient: messages not settled yet and the oldest one's waiting start,
        and its delivered and failed attempts from ``since`` on.

        A message waits from when it was made (its outbox row) or last replayed. Partner
        webhook messages have no outbox row: they wait from their first attempt, as far
        back as ``since``.
        """
        deliver = Destination.DELIVER.value
        failed = (AttemptOutcome.RETRY, AttemptOutcome.PARKED, AttemptOutcome.GONE)
        async with self._session() as conn:
            from_outbox = await _rows(
                conn,
                "SELECT recipient, COUNT(*) AS waiting, MIN(since) AS since FROM ("
                "SELECT o.routing_key AS recipient, COALESCE(("
                "SELECT MAX(p.replayed_at) FROM parked p WHERE p.distribution_id = o.message_id "
                "AND p.recipient = o.routing_key), o.created_at) AS since FROM outbox o "
                "WHERE o.destination = ? AND NOT EXISTS (SELECT 1 FROM delivery_settled s "
                "WHERE s.distribution_id = o.message_id AND s.recipient = o.routing_key)"
                ") AS unsettled GROUP BY recipient",
                (deliver,),
            )
            from_log = await _rows(
                conn,
                "SELECT recipient, COUNT(*) AS waiting, MIN(since) AS since FROM ("
                "SELECT l.recipient AS recipient, l.distribution_id AS distribution_id, "
                "MIN(l.at) AS since FROM delivery_log l WHERE l.at >= ? AND l.attempt > 0 "
                "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = l.distribution_id) "
                "AND NOT EXISTS (SELECT 1 FROM delivery_settled s "
                "WHERE s.distribution_id = l.distribution_id AND s.recipient = l.recipient) "
                "GROUP BY l.recipient, l.distribution_id) AS unsettled GROUP BY recipient",
                (_to_text(since),),
            )
            counts = await _rows(
                conn,
                "SELECT recipient, outcome, COUNT(*) AS attempts FROM delivery_log "
                "WHERE at >= ? AND outcome IN (?, ?, ?, ?) GROUP BY recipient, outcome",
                (_to_text(since), AttemptOutcome.DELIVERED.value, *(o.value for o in failed)),
            )
        found: dict[str, RecipientActivity] = {}

        def of(recipient: str) -> RecipientActivity:
            return found.setdefault(recipient, RecipientActivity(recipient=recipient))

        for row in (*from_outbox, *from_log):
            known = of(row["recipient"])
            started = _from_text(row["since"])
            oldest = known.oldest_waiting_since
            found[known.recipient] = replace(
                known,
                waiting=known.waiting + int(row["waiting"]),
                oldest_waiting_since=started if oldest is None else min(oldest, started),
            )
        for row in counts:
            known = of(row["recipient"])
            attempts = int(row["attempts"])
            if row["outcome"] == AttemptOutcome.DELIVERED.value:
                found[known.recipient] = replace(known, delivered=known.delivered + attempts)
            else:
                found[known.recipient] = replace(known, failed=known.failed + attempts)
        return sorted(found.values(), key=lambda a: a.recipient)

    async def at_risk(self, now: datetime, *, missed_since: datetime) -> list[AtRisk]:
        """Open SOP steps and undelivered messages past their warning point at ``now``,
        the most urgent first; those whose deadline passed before ``missed_since`` are
        left out. Only S0/S1 columns are read: never a timer's message body."""
        async with self._session() as conn:
            steps = await _rows(
                conn,
                "SELECT b.case_id, b.fire_at AS deadline_at, b.data, w.fire_at AS warning_at, "
                "c.kecamatan_code, f.data AS workflow FROM timers b "
                "JOIN timers w ON w.subject = b.subject AND w.kind = ? AND w.cancelled_at IS NULL "
                "JOIN cases c ON c.case_id = b.case_id "
                "LEFT JOIN case_workflow f ON f.case_id = b.case_id "
                "WHERE b.kind = ? AND b.cancelled_at IS NULL AND b.fire_at >= ? "
                "AND w.fire_at <= ?",
                (SLA_WARNING, SLA_BREACHED, _to_text(missed_since), _to_text(now)),
            )
            deliveries = await _rows(
                conn,
                "SELECT m.case_id, m.subject, m.fire_at AS deadline_at, r.fire_at AS warning_at, "
                "o.routing_key, o.created_at, c.kecamatan_code FROM timers m "
                "JOIN timers r ON r.subject = m.subject AND r.kind = ? AND r.cancelled_at IS NULL "
                "JOIN outbox o ON o.message_id = m.subject "
                "JOIN cases c ON c.case_id = m.case_id "
                "WHERE m.kind = ? AND m.cancelled_at IS NULL AND m.fire_at >= ? "
                "AND r.fire_at <= ? AND NOT EXISTS (SELECT 1 FROM delivery_settled s "
                "WHERE s.distribution_id = m.subject AND s.recipient = o.routing_key "
                "AND s.outcome = ?)",
                (
                    escalation.AT_RISK,
                    escalation.DEADLINE_MISSED,
                    _to_text(missed_since),
                    _to_text(now),
                    AttemptOutcome.DELIVERED.value,
                ),
            )
        found: list[AtRisk] = []
        for row in steps:
            data = json.loads(row["data"])
            step = int(data["step"])
            if row["workflow"] is not None and not _step_open(
                _workflow_from_json(row["workflow"]), step
            ):
                continue
            found.append(
                AtRisk(
                    kind=AtRiskKind.SLA_STEP,
                    case_id=row["case_id"],
                    kecamatan_code=row["kecamatan_code"],
                    started_at=_from_text(data["entered_at"]),
                    warning_at=_from_text(row["warning_at"]),
                    deadline_at=_from_text(row["deadline_at"]),
                    step=step,
                )
            )
        found.extend(
            AtRisk(
                kind=AtRiskKind.DELIVERY,
                case_id=row["case_id"],
                kecamatan_code=row["kecamatan_code"],
                started_at=_from_text(row["created_at"]),
                warning_at=_from_text(row["warning_at"]),
                deadline_at=_from_text(row["deadline_at"]),
                recipient=row["routing_key"],
                distribution_id=row["subject"],
            )
            for row in deliveries
        )
        return sorted(found, key=lambda item: (item.deadline_at, item.case_id))

    async def oldest_unpublished(self) -> datetime | None:
        """When the oldest outbox row not yet published was made (``None``: all are)."""
        async with self._session() as conn:
            rows = await _rows(
                conn, "SELECT MIN(created_at) AS oldest FROM outbox WHERE published_at IS NULL"
            )
        return _opt_from_text(rows[0]["oldest"]) if rows else None

    # ---- Security (issue 7): the audit log and the retention purge ----

    @staticmethod
    async def _append_audit(conn: Session, entry: audit.AuditEntry) -> audit.AuditRow:
        """Append to the hash chain inside the caller's write transaction. The head row
        is bumped first, so on PostgreSQL its row lock orders concurrent appends too."""
        await _run(conn, "UPDATE audit_head SET last_seq = last_seq + 1 WHERE id = 1")
        head = (await _rows(conn, "SELECT last_seq, last_hash FROM audit_head WHERE id = 1"))[0]
        row = audit.chained(entry, seq=int(head["last_seq"]), prev_hash=str(head["last_hash"]))
        await _run(
            conn,
            "INSERT INTO audit_log (seq, at, actor_role, actor_id, action, case_id, details, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.seq,
                row.at,
                row.actor_role,
                row.actor_id,
                row.action,
                row.case_id,
                row.details,
                row.prev_hash,
                row.hash,
            ),
        )
        await _run(conn, "UPDATE audit_head SET last_hash = ? WHERE id = 1", (row.hash,))
        return row

    async def append_audit(self, entry: audit.AuditEntry) -> audit.AuditRow:
        """Record something that changes nothing else (a read of personal data)."""
        async with self._session() as conn, _transaction(conn):
            return await self._append_audit(conn, entry)

    async def audit_rows(self, *, after_seq: int = 0, limit: int = 10_000) -> list[audit.AuditRow]:
        """Audit rows after ``after_seq``, in ``seq`` order."""
        async with self._session() as conn:
            rows = await _rows(
                conn,
                "SELECT seq, at, actor_role, actor_id, action, case_id, details, prev_hash, hash "
                "FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
        return [
            audit.AuditRow(
                seq=int(row["seq"]),
                at=row["at"],
                actor_role=row["actor_role"],
                actor_id=row["actor_id"],
                action=row["action"],
                case_id=row["case_id"],
                details=row["details"],
                prev_hash=row["prev_hash"],
                hash=row["hash"],
            )
            for row in rows
        ]

    async def audit_head(self) -> audit.AuditHead | None:
        async with self._session() as conn:
            rows = await _rows(conn, "SELECT last_seq, last_hash FROM audit_head WHERE id = 1")
        if not rows:
            return None
        return audit.AuditHead(int(rows[0]["last_seq"]), str(rows[0]["last_hash"]))

    async def purge_personal_data(
        self, *, ended_before: datetime, now: datetime, actor: audit.Actor
    ) -> list[str]:
        """Drop the personal data of every case that ended (closed, cancelled, duplicate)
        before ``ended_before``, one transaction per case; answers their ids.

        Kept: the S0/S1 part of the case, its workflow and history (S0/S1 details), the
        delivery log, SLA marks and receipts. Dropped: the sealed case, the raw report,
        the bodies of its published outbox rows (unpublished ones go at a later purge),
        its parked messages, the sealed event details and timer copies. Quarantined
        input received before ``ended_before`` loses its raw bytes too."""
        states = sorted(state.value for state in retention.ENDED_STATES)
        async with self._session() as conn:
            rows = await _rows(
                conn,
                "SELECT c.case_id, w.state, w.ended_at FROM cases c "
                "JOIN case_workflow w ON w.case_id = c.case_id "
                "WHERE c.purged_at IS NULL AND w.ended_at < ? AND w.state IN (?, ?, ?) "
                "ORDER BY w.ended_at, c.case_id",
                (_to_text(ended_before), *states),
            )
            purged: list[str] = []
            for row in rows:
                case_id = str(row["case_id"])
                async with _transaction(conn):
                    await self._purge_case(conn, case_id, now)
                    await self._append_audit(
                        conn,
                        audit.AuditEntry(
                            at=now,
                            actor=actor,
                            action=audit.CASE_PURGED,
                            case_id=case_id,
                            details={"state": row["state"], "ended_at": row["ended_at"]},
                        ),
                    )
                purged.append(case_id)
            async with _transaction(conn):
                dropped = await _run(
                    conn,
                    "UPDATE quarantine SET raw = ? WHERE received_at < ? AND raw <> ?",
                    (PURGED, _to_text(ended_before), PURGED),
                )
                if dropped:
                    await self._append_audit(
                        conn,
                        audit.AuditEntry(
                            at=now,
                            actor=actor,
                            action=audit.QUARANTINE_PURGED,
                            details={"rows": dropped},
                        ),
                    )
        return purged

    @staticmethod
    async def _purge_case(conn: Session, case_id: str, now: datetime) -> None:
        await _run(
            conn,
            "UPDATE cases SET sealed = NULL, purged_at = ? WHERE case_id = ?",
            (_to_text(now), case_id),
        )
        await _run(conn, "UPDATE reports SET raw = ? WHERE case_id = ?", (PURGED, case_id))
        await _run(
            conn,
            "UPDATE outbox SET body = ? WHERE case_id = ? AND published_at IS NOT NULL",
            (PURGED, case_id),
        )
        await _run(conn, "DELETE FROM parked WHERE case_id = ?", (case_id,))
        await _run(
            conn, "UPDATE case_events SET sealed_details = NULL WHERE case_id = ?", (case_id,)
        )
        await _run(conn, "UPDATE timers SET sealed_body = NULL WHERE case_id = ?", (case_id,))


def _step_open(flow: Workflow, step: int) -> bool:
    """Whether the step's latest record is neither done nor skipped."""
    records = [r for r in flow.steps if r.step == step]
    return not records or records[-1].open


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
