"""What comes back from recipients: receipts of delivered messages, and the ids of
signed inbound messages already taken (against replays)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.adapters.sql_db import Row
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.sql import fetch, run, transaction
from gateway.adapters.store.time_text import from_text, to_text
from gateway.model import ReceiptRecord

# Stale replay-guard rows are dropped at most this often by one store.
PRUNE_EVERY = timedelta(seconds=1)


def _receipt_of(row: Row) -> ReceiptRecord:
    return ReceiptRecord(
        webhook_id=row["webhook_id"],
        distribution_id=row["distribution_id"],
        case_id=row["case_id"],
        status=row["status"],
        at=from_text(row["at"]),
        received_at=from_text(row["received_at"]),
        by_role=row["by_role"],
        by_id=row["by_id"],
        ticket=row["ticket"],
        reason=row["reason"],
    )


class ReceiptSql(SqlBase):
    _next_prune = datetime.min.replace(tzinfo=UTC)

    async def record_receipt(self, receipt: ReceiptRecord) -> tuple[ReceiptRecord, bool]:
        async with self._session() as conn, transaction(conn):
            before = await fetch(
                conn, "SELECT * FROM receipts WHERE webhook_id = ?", (receipt.webhook_id,)
            )
            if before:
                return _receipt_of(before[0]), True
            found = await fetch(
                conn,
                "SELECT case_id FROM outbox WHERE message_id = ?",
                (receipt.distribution_id,),
            )
            case_id = str(found[0]["case_id"]) if found else None
            await run(
                conn,
                "INSERT INTO receipts (webhook_id, distribution_id, case_id, status, at, "
                "received_at, by_role, by_id, ticket, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    receipt.webhook_id,
                    receipt.distribution_id,
                    case_id,
                    receipt.status,
                    to_text(receipt.at),
                    to_text(receipt.received_at),
                    receipt.by_role,
                    receipt.by_id,
                    receipt.ticket,
                    receipt.reason,
                ),
            )
        return replace(receipt, case_id=case_id), False

    async def receipts(self, *, case_id: str) -> list[ReceiptRecord]:
        async with self._session() as conn:
            rows = await fetch(
                conn, "SELECT * FROM receipts WHERE case_id = ? ORDER BY received_at", (case_id,)
            )
        return [_receipt_of(row) for row in rows]

    async def remember_webhook_id(
        self, webhook_id: str, *, signed_at: int, seen_at: datetime, keep_until: datetime
    ) -> bool:
        """Record a verified inbound message; ``False`` when it was taken before.

        Rows whose ``keep_until`` has passed are dropped on the way, at most once every
        ``PRUNE_EVERY``: their signatures are outside the tolerance and would be refused
        anyway. (With every report, PostgreSQL ran that DELETE as a scan of the whole
        table in the benchmark.) The commit does not wait for the disk: the report's own
        durable commit, which follows, writes it too, and a replay that a power cut let
        through is answered as a duplicate of its report.
        """
        async with self._session() as conn, transaction(conn, durable=False):
            if seen_at >= self._next_prune:
                await run(
                    conn, "DELETE FROM seen_webhook_ids WHERE keep_until < ?", (to_text(seen_at),)
                )
                self._next_prune = seen_at + PRUNE_EVERY
            inserted = (
                await run(
                    conn,
                    "INSERT INTO seen_webhook_ids (webhook_id, signed_at, seen_at, keep_until) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (webhook_id, signed_at, to_text(seen_at), to_text(keep_until)),
                )
                == 1
            )
        return inserted
