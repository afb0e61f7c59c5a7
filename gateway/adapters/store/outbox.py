"""The outbox: messages written in the same transaction as what caused them, claimed
by one relay at a time, marked once published."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from gateway.adapters.sealing import Sealer
from gateway.adapters.sql_db import Row, Session
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.sealed_columns import OUTBOX
from gateway.adapters.store.sql import fetch, transaction
from gateway.adapters.store.time_text import opt_from_text, opt_text, to_text
from gateway.model import Destination, OutboundMessage, OutboxClaim, OutboxRow

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
            body=sealer.open(bytes(row["body"]), OUTBOX.aad(row["message_id"])),
            deadline_at=opt_from_text(row["deadline_at"]),
        ),
    )


_MARK_PUBLISHED = "UPDATE outbox SET published_at = ? WHERE id = ? AND published_at IS NULL"
_INSERT_OUTBOX = (
    "INSERT INTO outbox (created_at, destination, routing_key, message_id, case_id, "
    "sequence, deadline_at, body, claimed_by, claimed_until) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _outbox_values(
    m: OutboundMessage, at: str, sealer: Sealer, claim: OutboxClaim | None
) -> tuple[object, ...]:
    return (
        at,
        m.destination.value,
        m.routing_key,
        m.message_id,
        m.case_id,
        m.sequence,
        opt_text(m.deadline_at),
        sealer.seal(m.body, OUTBOX.aad(m.message_id)),
        None if claim is None else claim.claimant,
        None if claim is None else to_text(claim.until),
    )


async def insert_outbox(
    conn: Session, messages: Sequence[OutboundMessage], at: datetime, sealer: Sealer
) -> None:
    """Inside the caller's write transaction; each body sealed."""
    if messages:
        created_at = to_text(at)
        await conn.run_many(
            _INSERT_OUTBOX, [_outbox_values(m, created_at, sealer, None) for m in messages]
        )


async def insert_claimed_outbox(
    conn: Session,
    messages: Sequence[OutboundMessage],
    at: datetime,
    sealer: Sealer,
    claim: OutboxClaim,
) -> tuple[OutboxRow, ...]:
    """Like ``insert_outbox``, the rows held by ``claim``'s relay; answers them."""
    created_at = to_text(at)
    rows = []
    for m in messages:
        [written] = await conn.rows(
            f"{_INSERT_OUTBOX} RETURNING id", _outbox_values(m, created_at, sealer, claim)
        )
        rows.append(OutboxRow(id=int(written["id"]), message=m))
    return tuple(rows)


class OutboxSql(SqlBase):
    async def pending_outbox(self, limit: int) -> list[OutboxRow]:
        """Unpublished rows, oldest first, claimed or not (for ops and tests)."""
        async with self._session() as conn:
            rows = await fetch(
                conn, f"{_OUTBOX_ROW} WHERE published_at IS NULL ORDER BY id LIMIT ?", (limit,)
            )
        return [_outbox_row(row, self._sealer) for row in rows]

    async def claim_outbox(
        self, claimant: str, limit: int, *, now: datetime, lease_s: float, own: bool = True
    ) -> list[OutboxRow]:
        until = to_text(now + timedelta(seconds=lease_s))
        async with self._session() as conn:
            if not await fetch(conn, "SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT 1"):
                return []  # no write lock taken for nothing
        async with self._session() as conn, transaction(conn, durable=False):
            claimed = await fetch(
                conn,
                "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id IN ("
                "SELECT id FROM outbox WHERE published_at IS NULL AND (claimed_by IS NULL "
                "OR claimed_by = ? OR claimed_until < ?) ORDER BY id LIMIT ?) RETURNING id",
                (claimant, until, claimant if own else None, to_text(now), limit),
            )
            if not claimed:
                return []
            ids = [row["id"] for row in claimed]
            rows = await fetch(
                conn,
                f"{_OUTBOX_ROW} WHERE id IN ({', '.join('?' * len(ids))}) ORDER BY id",
                ids,
            )
        return [_outbox_row(row, self._sealer) for row in rows]

    async def release_outbox(self, claimant: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with self._session() as conn, transaction(conn, durable=False):
            await conn.run_many(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL "
                "WHERE id = ? AND claimed_by = ? AND published_at IS NULL",
                [(i, claimant) for i in ids],
            )

    async def mark_published(self, ids: Sequence[int], at: datetime) -> None:
        if not ids:
            return
        published_at = to_text(at)
        async with self._session() as conn, transaction(conn, durable=False):
            await conn.run_many(_MARK_PUBLISHED, [(published_at, i) for i in ids])

    async def outbox_lag(self) -> int:
        async with self._session() as conn:
            rows = await fetch(conn, "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        return int(rows[0][0])
