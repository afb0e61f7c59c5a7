"""What comes back from recipients: receipts of delivered messages."""

from __future__ import annotations

from dataclasses import replace

from gateway.adapters.sql_db import Row
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.sql import fetch, run, transaction
from gateway.adapters.store.time_text import from_text, to_text
from gateway.model import ReceiptRecord


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
