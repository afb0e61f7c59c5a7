"""Intake: an accepted report becomes its case, raw report, outbox messages, timers and
audit row in one transaction, once per source reference; refused input is quarantined.
Either write also remembers the signed message the input came in, once (against replays).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from gateway import audit
from gateway.adapters.sealing import Sealer
from gateway.adapters.sql_db import Session
from gateway.adapters.store.audit import append_to_audit
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.cases import case_columns
from gateway.adapters.store.outbox import insert_claimed_outbox, insert_outbox
from gateway.adapters.store.sealed_columns import QUARANTINE, REPORTS
from gateway.adapters.store.sql import fetch, run, transaction
from gateway.adapters.store.time_text import from_text, opt_from_text, opt_text, to_text
from gateway.adapters.store.timers import insert_timers
from gateway.errors import StoreUnavailable, WebhookReplayed
from gateway.model import (
    AcceptedReport,
    IntakeResult,
    OutboxRow,
    QuarantinedInput,
    SignedMessage,
)

# Stale replay-guard rows are dropped at most this often by one store.
PRUNE_EVERY = timedelta(seconds=1)
_TAKEN_BEFORE = "this webhook-id with this webhook-timestamp was taken before"

_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (id, received_at, source, reason, content_type, errors, raw) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


async def _existing(conn: Session, report: AcceptedReport) -> IntakeResult | None:
    rows = await fetch(
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
        received_at=from_text(row["received_at"]),
        needs_other_agencies=bool(row["needs_other_agencies"]),
        c112_deadline_at=opt_from_text(row["c112_deadline_at"]),
    )


async def _insert_report(
    conn: Session, report: AcceptedReport, sealer: Sealer
) -> tuple[OutboxRow, ...]:
    """Answers the outbox rows written held by ``report.outbox_claim`` (none without)."""
    case = report.case
    received_at = to_text(case.received_at)
    await run(
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
            opt_text(report.c112_deadline_at),
            *case_columns(case, sealer),
        ),
    )
    await run(
        conn,
        "INSERT INTO reports (source_system, source_reference, received_at, raw, case_id) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            report.source_system,
            report.source_reference,
            received_at,
            sealer.seal(report.raw, REPORTS.aad(case.case_id)),
            case.case_id,
        ),
    )
    claimed: tuple[OutboxRow, ...] = ()
    if report.outbox_claim is None:
        await insert_outbox(conn, report.outgoing, case.received_at, sealer)
    else:
        claimed = await insert_claimed_outbox(
            conn, report.outgoing, case.received_at, sealer, report.outbox_claim
        )
    await insert_timers(conn, report.timers, sealer)
    await append_to_audit(
        conn,
        audit.AuditEntry(
            at=case.received_at,
            actor=audit.Actor(report.source_system),
            action=audit.CASE_RECEIVED,
            case_id=case.case_id,
            details={"risk": case.risk.level.value, "kecamatan": case.location.kecamatan.code},
        ),
    )
    return claimed


async def _remember(conn: Session, message: SignedMessage, *, prune: bool) -> bool:
    """Inside the caller's write transaction: ``False`` when ``message`` was taken before.
    With ``prune``, rows whose ``keep_until`` has passed go first: their signatures are
    out of tolerance and would be refused anyway."""
    if prune:
        await run(
            conn,
            "DELETE FROM seen_webhook_ids WHERE keep_until < ?",
            (to_text(message.seen_at),),
        )
    inserted = await run(
        conn,
        "INSERT INTO seen_webhook_ids (webhook_id, signed_at, seen_at, keep_until) "
        "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            message.webhook_id,
            message.signed_at,
            to_text(message.seen_at),
            to_text(message.keep_until),
        ),
    )
    return inserted == 1


async def _write_report(
    conn: Session, report: AcceptedReport, sealer: Sealer, *, prune: bool
) -> IntakeResult | None:
    """``None``, having written nothing, when ``report.message`` was taken before."""
    if report.message is not None and not await _remember(conn, report.message, prune=prune):
        return None
    existing = await _existing(conn, report)
    if existing is not None:
        return existing
    claimed = await _insert_report(conn, report, sealer)
    case = report.case
    return IntakeResult(
        case_id=case.case_id,
        duplicate=False,
        received_at=case.received_at,
        needs_other_agencies=case.needs_other_agencies,
        c112_deadline_at=report.c112_deadline_at,
        claimed_outbox=claimed,
    )


async def _written_before(
    conn: Session, report: AcceptedReport, refusal: Exception
) -> IntakeResult:
    """A report refused by a constraint: another process wrote it first."""
    existing = await _existing(conn, report)
    if existing is None:
        raise StoreUnavailable(str(refusal)) from refusal
    return existing


class IntakeSql(SqlBase):
    _next_prune = datetime.min.replace(tzinfo=UTC)

    def _prune_now(self, message: SignedMessage | None) -> bool:
        """Whether this write drops the stale replay-guard rows: at most once every
        ``PRUNE_EVERY`` (with every report, PostgreSQL ran that DELETE as a scan of the
        whole table in the benchmark)."""
        if message is None or message.seen_at < self._next_prune:
            return False
        self._next_prune = message.seen_at + PRUNE_EVERY
        return True

    async def accept_report(self, report: AcceptedReport) -> IntakeResult:
        """Reports taken in the same turn of the event loop share one commit."""
        prune = self._prune_now(report.message)
        result = await self._durable_writes.submit(
            lambda conn: _write_report(conn, report, self._sealer, prune=prune),
            lambda conn, refusal: _written_before(conn, report, refusal),
        )
        if result is None:
            raise WebhookReplayed(_TAKEN_BEFORE)
        return result

    async def quarantine(self, item: QuarantinedInput) -> str:
        quarantine_id = str(uuid.uuid4())
        errors = json.dumps([{"pointer": e.pointer, "detail": e.detail} for e in item.errors])
        prune = self._prune_now(item.message)
        async with self._session() as conn, transaction(conn):
            if item.message is not None and not await _remember(conn, item.message, prune=prune):
                raise WebhookReplayed(_TAKEN_BEFORE)
            await run(
                conn,
                _INSERT_QUARANTINE,
                (
                    quarantine_id,
                    to_text(item.received_at),
                    item.source,
                    item.reason,
                    item.content_type,
                    errors,
                    self._sealer.seal(item.raw, QUARANTINE.aad(quarantine_id)),
                ),
            )
        return quarantine_id

    async def quarantined(self, limit: int = 100) -> list[dict[str, object]]:
        async with self._session() as conn:
            rows = await fetch(
                conn,
                "SELECT id, received_at, source, reason, content_type, errors FROM quarantine "
                "ORDER BY received_at DESC, id LIMIT ?",
                (limit,),
            )
        return [
            {
                "id": row["id"],
                "received_at": from_text(row["received_at"]),
                "source": row["source"],
                "reason": row["reason"],
                "content_type": row["content_type"],
                "errors": json.loads(row["errors"]),
            }
            for row in rows
        ]
