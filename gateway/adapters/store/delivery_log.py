"""The delivery log: every attempt to hand a message to a recipient, appended, read
back by case, distribution, recipient, outcome or time."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.adapters.sql_db import Session
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.sql import fetch, run, transaction
from gateway.adapters.store.time_text import from_text, opt_from_text, opt_text, to_text
from gateway.model import AttemptOutcome, DeliveryAttempt, DeliveryLogQuery, LoggedAttempt

_INSERT_ATTEMPT = (
    "INSERT INTO delivery_log (distribution_id, case_id, recipient, attempt, at, outcome, "
    "latency_ms, status_code, error_class, next_try_at, reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_ATTEMPTS = (
    "SELECT id, distribution_id, case_id, recipient, attempt, at, outcome, latency_ms, "
    "status_code, error_class, next_try_at, reason FROM delivery_log "
)


async def insert_attempts(conn: Session, attempts: Sequence[DeliveryAttempt]) -> None:
    """Inside the caller's write transaction."""
    for attempt in attempts:
        await run(
            conn,
            _INSERT_ATTEMPT,
            (
                attempt.distribution_id,
                attempt.case_id,
                attempt.recipient,
                attempt.attempt,
                to_text(attempt.at),
                attempt.outcome.value,
                attempt.latency_ms,
                attempt.status_code,
                attempt.error_class,
                opt_text(attempt.next_try_at),
                attempt.reason,
            ),
        )


class DeliveryLogSql(SqlBase):
    async def record_attempt(self, attempt: DeliveryAttempt) -> None:
        async with self._session() as conn, transaction(conn):
            await insert_attempts(conn, (attempt,))

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
            params.append(to_text(query.since))
        if query.until is not None:
            where.append("at < ?")
            params.append(to_text(query.until))
        order = "DESC" if newest_first else "ASC"
        sql = f"{_SELECT_ATTEMPTS}WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ?"
        async with self._session() as conn:
            rows = await fetch(conn, sql, (*params, query.limit))
        return [
            LoggedAttempt(
                log_id=row["id"],
                attempt=DeliveryAttempt(
                    distribution_id=row["distribution_id"],
                    case_id=row["case_id"],
                    recipient=row["recipient"],
                    attempt=row["attempt"],
                    at=from_text(row["at"]),
                    outcome=AttemptOutcome(row["outcome"]),
                    latency_ms=row["latency_ms"],
                    status_code=row["status_code"],
                    error_class=row["error_class"],
                    next_try_at=opt_from_text(row["next_try_at"]),
                    reason=row["reason"],
                ),
            )
            for row in rows
        ]
