"""The audit log: a hash chain of who did what to which case, appended inside the
transaction of the change it records."""

from __future__ import annotations

from gateway import audit
from gateway.adapters.sql_db import Session
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.sql import fetch, run, transaction

_HEAD = "SELECT last_seq, last_hash FROM audit_head WHERE id = 1"


async def append_to_audit(conn: Session, entry: audit.AuditEntry) -> audit.AuditRow:
    """Append to the hash chain inside the caller's write transaction. The head row
    is bumped first, so on PostgreSQL its row lock orders concurrent appends too."""
    await run(conn, "UPDATE audit_head SET last_seq = last_seq + 1 WHERE id = 1")
    head = (await fetch(conn, _HEAD))[0]
    row = audit.chained(entry, seq=int(head["last_seq"]), prev_hash=str(head["last_hash"]))
    await run(
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
    await run(conn, "UPDATE audit_head SET last_hash = ? WHERE id = 1", (row.hash,))
    return row


class AuditSql(SqlBase):
    async def append_audit(self, entry: audit.AuditEntry) -> audit.AuditRow:
        """Record something that changes nothing else (a read of personal data)."""
        async with self._session() as conn, transaction(conn):
            return await append_to_audit(conn, entry)

    async def audit_rows(self, *, after_seq: int = 0, limit: int = 10_000) -> list[audit.AuditRow]:
        """Audit rows after ``after_seq``, in ``seq`` order."""
        async with self._session() as conn:
            rows = await fetch(
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
            rows = await fetch(conn, _HEAD)
        if not rows:
            return None
        return audit.AuditHead(int(rows[0]["last_seq"]), str(rows[0]["last_hash"]))
