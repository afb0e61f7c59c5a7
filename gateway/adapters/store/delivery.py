"""Delivery: per-case order of the messages to each recipient (what is settled), and
the parking lot of messages given up on, replayed on an operator's word."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from gateway import audit
from gateway.adapters.sql_db import Session
from gateway.adapters.store.audit import append_to_audit
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.delivery_log import insert_attempts
from gateway.adapters.store.outbox import insert_outbox
from gateway.adapters.store.sealed_columns import PARKED
from gateway.adapters.store.sql import fetch, run, transaction
from gateway.adapters.store.time_text import from_text, opt_from_text, opt_text, to_text
from gateway.adapters.store.timers import cancel_subjects
from gateway.model import (
    AttemptOutcome,
    DeliveryAttempt,
    Destination,
    OutboundMessage,
    ParkedMessage,
    ParkedSelector,
)

_SETTLE = (
    "INSERT INTO delivery_settled (distribution_id, recipient, case_id, sequence, outcome, at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (distribution_id, recipient) "
    "DO UPDATE SET outcome = excluded.outcome, at = excluded.at"
)
# An outbox delivery row's settled_at: when it was first settled, NULL while it waits
# (0010); it follows delivery_settled, which stays the record.
_MIRROR_SETTLED = (
    "UPDATE outbox SET settled_at = COALESCE(settled_at, ?) "
    "WHERE message_id = ? AND routing_key = ? AND destination = 'deliver'"
)
_MIRROR_UNSETTLED = (
    "UPDATE outbox SET settled_at = NULL "
    "WHERE message_id = ? AND routing_key = ? AND destination = 'deliver' AND NOT EXISTS ("
    "SELECT 1 FROM delivery_settled s "
    "WHERE s.distribution_id = outbox.message_id AND s.recipient = outbox.routing_key)"
)


class DeliverySql(SqlBase):
    async def record_delivered(
        self, attempt: DeliveryAttempt, *, sequence: int, escalation_subjects: Sequence[str]
    ) -> None:
        """Deliveries settled in the same turn of the event loop share one commit."""

        async def settle(conn: Session) -> None:
            await run(
                conn,
                _SETTLE,
                (
                    attempt.distribution_id,
                    attempt.recipient,
                    attempt.case_id,
                    sequence,
                    AttemptOutcome.DELIVERED.value,
                    to_text(attempt.at),
                ),
            )
            await run(
                conn,
                _MIRROR_SETTLED,
                (to_text(attempt.at), attempt.distribution_id, attempt.recipient),
            )
            await insert_attempts(conn, (attempt,))
            await cancel_subjects(conn, escalation_subjects, attempt.at)

        await self._durable_writes.submit(settle)

    async def earlier_unsettled(self, *, case_id: str, recipient: str, sequence: int) -> str | None:
        async with self._session() as conn:
            rows = await fetch(
                conn,
                "SELECT o.message_id FROM outbox o WHERE o.case_id = ? AND o.destination = ? "
                "AND o.routing_key = ? AND o.sequence < ? AND NOT EXISTS ("
                "SELECT 1 FROM delivery_settled s "
                "WHERE s.distribution_id = o.message_id AND s.recipient = ?) "
                "ORDER BY o.sequence, o.id LIMIT 1",
                (case_id, Destination.DELIVER.value, recipient, sequence, recipient),
            )
        return str(rows[0]["message_id"]) if rows else None

    async def already_delivered(self, *, distribution_id: str, recipient: str) -> bool:
        async with self._session() as conn:
            rows = await fetch(
                conn,
                "SELECT 1 FROM delivery_settled "
                "WHERE distribution_id = ? AND recipient = ? AND outcome = ?",
                (distribution_id, recipient, AttemptOutcome.DELIVERED.value),
            )
        return bool(rows)

    async def enqueue_outbound(self, messages: Sequence[OutboundMessage]) -> None:
        if not messages:
            return
        async with self._session() as conn, transaction(conn):
            await insert_outbox(conn, messages, datetime.now(UTC), self._sealer)

    async def park(self, message: ParkedMessage) -> bool:
        async with self._session() as conn, transaction(conn):
            waiting = await fetch(
                conn,
                "SELECT 1 FROM parked WHERE distribution_id = ? AND recipient = ? "
                "AND replayed_at IS NULL",
                (message.distribution_id, message.recipient),
            )
            if waiting:
                return False
            parked_at = to_text(message.parked_at)
            await run(
                conn,
                "INSERT INTO parked (distribution_id, recipient, case_id, sequence, deadline_at, "
                "attempt, tries, reason, error_class, parked_at, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message.distribution_id,
                    message.recipient,
                    message.case_id,
                    message.sequence,
                    opt_text(message.deadline_at),
                    message.attempt,
                    message.tries,
                    message.reason,
                    message.error_class,
                    parked_at,
                    self._sealer.seal(
                        message.body, PARKED.aad(message.distribution_id, message.recipient)
                    ),
                ),
            )
            await run(
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
            await run(
                conn,
                _MIRROR_SETTLED,
                (parked_at, message.distribution_id, message.recipient),
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
            rows = await fetch(conn, sql, (*params, limit))
        return [
            ParkedMessage(
                parked_id=row["id"],
                distribution_id=row["distribution_id"],
                recipient=row["recipient"],
                case_id=row["case_id"],
                sequence=row["sequence"],
                deadline_at=opt_from_text(row["deadline_at"]),
                attempt=row["attempt"],
                tries=row["tries"],
                reason=row["reason"],
                error_class=row["error_class"],
                parked_at=from_text(row["parked_at"]),
                body=self._sealer.open(
                    bytes(row["body"]), PARKED.aad(row["distribution_id"], row["recipient"])
                ),
                replayed_at=opt_from_text(row["replayed_at"]),
            )
            for row in rows
        ]

    async def mark_replayed(
        self, parked_ids: Sequence[int], at: datetime, *, by: audit.Actor
    ) -> None:
        if not parked_ids:
            return
        async with self._session() as conn, transaction(conn):
            for parked_id in parked_ids:
                await run(
                    conn,
                    "DELETE FROM delivery_settled WHERE outcome IN (?, ?) AND EXISTS ("
                    "SELECT 1 FROM parked p WHERE p.id = ? AND p.replayed_at IS NULL "
                    "AND p.distribution_id = delivery_settled.distribution_id "
                    "AND p.recipient = delivery_settled.recipient)",
                    (AttemptOutcome.PARKED.value, AttemptOutcome.GONE.value, parked_id),
                )
                replayed = await fetch(
                    conn,
                    "SELECT distribution_id, recipient, case_id FROM parked "
                    "WHERE id = ? AND replayed_at IS NULL",
                    (parked_id,),
                )
                await run(
                    conn,
                    "UPDATE parked SET replayed_at = ? WHERE id = ? AND replayed_at IS NULL",
                    (to_text(at), parked_id),
                )
                for row in replayed:
                    await run(conn, _MIRROR_UNSETTLED, (row["distribution_id"], row["recipient"]))
                    await append_to_audit(
                        conn,
                        audit.AuditEntry(
                            at=at,
                            actor=by,
                            action=audit.DELIVERY_REPLAYED,
                            case_id=row["case_id"],
                            details={
                                "distribution_id": row["distribution_id"],
                                "recipient": row["recipient"],
                            },
                        ),
                    )
