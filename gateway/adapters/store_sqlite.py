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
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import aiosqlite

from contracts.case import Case
from gateway.errors import StoreUnavailable
from gateway.model import (
    AcceptedReport,
    AttemptOutcome,
    DeliveryAttempt,
    Destination,
    IntakeResult,
    OutboundMessage,
    OutboxRow,
    QuarantinedInput,
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
    "SELECT distribution_id, case_id, recipient, attempt, at, outcome, latency_ms, "
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
        where: list[str] = []
        params: list[object] = []
        if case_id is not None:
            where.append("case_id = ?")
            params.append(case_id)
        if distribution_id is not None:
            where.append("distribution_id = ?")
            params.append(distribution_id)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        sql = f"{_SELECT_ATTEMPTS}{clause}ORDER BY id DESC LIMIT ?"
        async with self._session() as conn:
            rows = await _rows(
                conn,
                sql,
                (*params, limit),
            )
        return [
            DeliveryAttempt(
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
