"""The retention purge: the personal data of cases that ended long enough ago, and of
old quarantined input, dropped; what the statistics need is kept."""

from __future__ import annotations

from datetime import datetime

from gateway import audit, retention
from gateway.adapters.sql_db import Session
from gateway.adapters.store.audit import append_to_audit
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.sql import fetch, run, transaction
from gateway.adapters.store.time_text import to_text

PURGED = b""
"""What a purged raw report, outbox or quarantine body is left holding."""
ALL = 2**62  # a LIMIT both databases take for "no limit"


async def _purge_case(conn: Session, case_id: str, now: datetime) -> bool:
    """Answers whether this purged the case (another process may have done it since the
    candidates were read)."""
    if not await run(
        conn,
        "UPDATE cases SET sealed = NULL, purged_at = ? WHERE case_id = ? AND purged_at IS NULL",
        (to_text(now), case_id),
    ):
        return False
    await run(conn, "UPDATE reports SET raw = ? WHERE case_id = ?", (PURGED, case_id))
    await run(
        conn,
        "UPDATE outbox SET body = ? WHERE case_id = ? AND published_at IS NOT NULL",
        (PURGED, case_id),
    )
    await run(conn, "DELETE FROM parked WHERE case_id = ?", (case_id,))
    await run(conn, "UPDATE case_events SET sealed_details = NULL WHERE case_id = ?", (case_id,))
    await run(conn, "UPDATE timers SET sealed_body = NULL WHERE case_id = ?", (case_id,))
    return True


class PurgeSql(SqlBase):
    async def purge_personal_data(
        self,
        *,
        ended_before: datetime,
        now: datetime,
        actor: audit.Actor,
        limit: int | None = None,
    ) -> list[str]:
        """Drop the personal data of every case (at most ``limit``, earliest ended first)
        that ended (closed, cancelled, duplicate) before ``ended_before``, one transaction
        per case; answers their ids. Several processes may purge at once: each case is
        purged, and audited, once.

        Kept: the S0/S1 part of the case, its workflow and history (S0/S1 details), the
        delivery log, SLA marks and receipts. Dropped: the sealed case, the raw report,
        the bodies of its published outbox rows (those published after it was purged go
        at a later purge), its parked messages, the sealed event details and timer
        copies. Quarantined input received before ``ended_before`` loses its raw bytes
        too."""
        states = sorted(state.value for state in retention.ENDED_STATES)
        async with self._session() as conn:
            rows = await fetch(
                conn,
                "SELECT c.case_id, w.state, w.ended_at FROM cases c "
                "JOIN case_workflow w ON w.case_id = c.case_id "
                "WHERE c.purged_at IS NULL AND w.ended_at < ? AND w.state IN (?, ?, ?) "
                "ORDER BY w.ended_at, c.case_id LIMIT ?",
                (to_text(ended_before), *states, ALL if limit is None else limit),
            )
            purged: list[str] = []
            for row in rows:
                case_id = str(row["case_id"])
                async with transaction(conn):
                    if not await _purge_case(conn, case_id, now):
                        continue
                    await append_to_audit(
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
            async with transaction(conn):
                await run(
                    conn,
                    "UPDATE outbox SET body = ? WHERE published_at IS NOT NULL AND body <> ? "
                    "AND case_id IN (SELECT case_id FROM cases WHERE purged_at IS NOT NULL)",
                    (PURGED, PURGED),
                )
                dropped = await run(
                    conn,
                    "UPDATE quarantine SET raw = ? WHERE received_at < ? AND raw <> ?",
                    (PURGED, to_text(ended_before), PURGED),
                )
                if dropped:
                    await append_to_audit(
                        conn,
                        audit.AuditEntry(
                            at=now,
                            actor=actor,
                            action=audit.QUARANTINE_PURGED,
                            details={"rows": dropped},
                        ),
                    )
        return purged
