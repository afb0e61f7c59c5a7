"""Timers: SLA and escalation deadlines kept with the case, fired at most once each,
in the same transaction as what firing them writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from gateway.adapters.sealing import Sealer
from gateway.adapters.sql_db import Row, Session
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.delivery_log import insert_attempts
from gateway.adapters.store.outbox import insert_outbox
from gateway.adapters.store.sealed_columns import TIMERS
from gateway.adapters.store.sql import fetch, run, transaction
from gateway.adapters.store.time_text import from_text, opt_from_text, to_text
from gateway.model import Timer, TimerEffects


async def insert_timers(conn: Session, timers: Sequence[Timer], sealer: Sealer) -> None:
    """Inside the caller's write transaction; the message copy an escalation timer carries
    (``data["body"]``) is sealed apart."""
    if not timers:
        return
    rows = []
    for t in timers:
        data = dict(t.data)
        body = data.pop("body", None)
        sealed = None if body is None else sealer.seal(str(body).encode(), TIMERS.aad(t.timer_id))
        rows.append(
            (
                t.timer_id,
                t.kind,
                t.case_id,
                t.subject,
                to_text(t.fire_at),
                json.dumps(data),
                sealed,
            )
        )
    await conn.run_many(
        "INSERT INTO timers (timer_id, kind, case_id, subject, fire_at, data, sealed_body) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def timer_of(row: Row, sealer: Sealer) -> Timer:
    data = json.loads(row["data"])
    if row["sealed_body"] is not None:
        aad = TIMERS.aad(row["timer_id"])
        data["body"] = sealer.open(bytes(row["sealed_body"]), aad).decode()
    return Timer(
        timer_id=row["timer_id"],
        kind=row["kind"],
        case_id=row["case_id"],
        subject=row["subject"],
        fire_at=from_text(row["fire_at"]),
        data=data,
    )


# A timer's message copy (``sealed_body``) is dropped once it fired or was cancelled: it is
# there only for the failover send, and every copy kept is one more place personal data lies.
CANCEL_PENDING = (
    "UPDATE timers SET cancelled_at = ?, sealed_body = NULL "
    "WHERE subject = ? AND fired_at IS NULL AND cancelled_at IS NULL"
)


async def cancel_subjects(conn: Session, subjects: Sequence[str], at: datetime) -> int:
    """Inside the caller's write transaction: the timers of ``subjects`` not fired yet."""
    cancelled = 0
    for subject in subjects:
        cancelled += await run(conn, CANCEL_PENDING, (to_text(at), subject))
    return cancelled


class TimerSql(SqlBase):
    async def schedule_timers(self, timers: Sequence[Timer]) -> None:
        async with self._session() as conn, transaction(conn):
            await insert_timers(conn, timers, self._sealer)

    async def cancel_timers(self, *, subject: str) -> int:
        async with self._session() as conn, transaction(conn):
            return await cancel_subjects(conn, [subject], datetime.now(UTC))

    async def fire_due_timers(
        self,
        now: datetime,
        limit: int,
        handle: Callable[[Timer], TimerEffects],
    ) -> list[Timer]:
        fired: list[Timer] = []
        async with self._session() as conn, transaction(conn):
            # The write transaction is alone among writers from here to COMMIT, so another process
            # sees these timers fired or not at all.
            rows = await fetch(
                conn,
                "SELECT timer_id, kind, case_id, subject, fire_at, data, sealed_body FROM timers "
                "WHERE fired_at IS NULL AND cancelled_at IS NULL AND fire_at <= ? "
                "ORDER BY fire_at, timer_id LIMIT ?",
                (to_text(now), limit),
            )
            for row in rows:
                timer = timer_of(row, self._sealer)
                effects = handle(timer)
                await insert_outbox(conn, effects.outgoing, now, self._sealer)
                await insert_attempts(conn, effects.delivery_log)
                await insert_timers(conn, effects.timers, self._sealer)
                await run(
                    conn,
                    "UPDATE timers SET fired_at = ?, sealed_body = NULL WHERE timer_id = ?",
                    (to_text(now), timer.timer_id),
                )
                fired.append(timer)
        return fired

    async def next_timer_due(self) -> datetime | None:
        async with self._session() as conn:
            rows = await fetch(
                conn,
                "SELECT MIN(fire_at) AS due FROM timers "
                "WHERE fired_at IS NULL AND cancelled_at IS NULL",
            )
        return opt_from_text(rows[0]["due"])

    async def timers_of(self, case_id: str) -> list[tuple[Timer, datetime | None]]:
        """Every timer of a case, fired or not, with when it fired (for ops and tests)."""
        async with self._session() as conn:
            rows = await fetch(
                conn,
                "SELECT timer_id, kind, case_id, subject, fire_at, data, sealed_body, fired_at "
                "FROM timers WHERE case_id = ? ORDER BY fire_at, timer_id",
                (case_id,),
            )
        return [(timer_of(row, self._sealer), opt_from_text(row["fired_at"])) for row in rows]
