"""Partner subscriptions: who gets which topics, how, and whether they are active."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from contracts.envelope import RecipientRole
from contracts.subscription import DeliveryMode, SubscriptionStatus
from gateway import audit
from gateway.adapters.sql_db import Row
from gateway.adapters.store.audit import append_to_audit
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.sql import fetch, run, transaction
from gateway.adapters.store.time_text import from_text, to_text
from gateway.partners import Subscription

_ONE = "SELECT * FROM subscriptions WHERE subscription_id = ?"


def _subscription_of(row: Row) -> Subscription:
    return Subscription(
        subscription_id=row["subscription_id"],
        agency_id=row["agency_id"],
        role=RecipientRole(row["role"]),
        patterns=tuple(json.loads(row["patterns"])),
        mode=DeliveryMode(row["mode"]),
        url=row["url"],
        secret=row["secret"],
        status=SubscriptionStatus(row["status"]),
        created_at=from_text(row["created_at"]),
        updated_at=from_text(row["updated_at"]),
        previous_secret=row["previous_secret"],
        previous_until=None if row["previous_until"] is None else from_text(row["previous_until"]),
    )


class SubscriptionSql(SqlBase):
    async def add_subscription(self, subscription: Subscription, *, by: audit.Actor) -> None:
        async with self._session() as conn, transaction(conn):
            await run(
                conn,
                "INSERT INTO subscriptions (subscription_id, agency_id, role, patterns, mode, "
                "url, secret, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    subscription.subscription_id,
                    subscription.agency_id,
                    subscription.role.value,
                    json.dumps(list(subscription.patterns)),
                    subscription.mode.value,
                    subscription.url,
                    subscription.secret,
                    subscription.status.value,
                    to_text(subscription.created_at),
                    to_text(subscription.updated_at),
                ),
            )
            await append_to_audit(
                conn,
                audit.AuditEntry(
                    at=subscription.created_at,
                    actor=by,
                    action=audit.SUBSCRIPTION_CREATED,
                    details={
                        "subscription_id": subscription.subscription_id,
                        "agency_id": subscription.agency_id,
                        "role": subscription.role.value,
                        "mode": subscription.mode.value,
                    },
                ),
            )

    async def subscriptions(self) -> list[Subscription]:
        async with self._session() as conn:
            rows = await fetch(
                conn, "SELECT * FROM subscriptions ORDER BY created_at, subscription_id"
            )
        return [_subscription_of(row) for row in rows]

    async def subscription(self, subscription_id: str) -> Subscription | None:
        async with self._session() as conn:
            rows = await fetch(conn, _ONE, (subscription_id,))
        return _subscription_of(rows[0]) if rows else None

    async def set_subscription_status(
        self,
        subscription_id: str,
        status: SubscriptionStatus,
        at: datetime,
        *,
        by: audit.Actor,
        only_from: SubscriptionStatus | None = None,
    ) -> Subscription | None:
        async with self._session() as conn, transaction(conn):
            changed = await run(
                conn,
                "UPDATE subscriptions SET status = ?, updated_at = ? "
                "WHERE subscription_id = ? AND status = COALESCE(?, status)",
                (
                    status.value,
                    to_text(at),
                    subscription_id,
                    None if only_from is None else only_from.value,
                ),
            )
            rows = await fetch(conn, _ONE, (subscription_id,))
            if changed:
                await append_to_audit(
                    conn,
                    audit.AuditEntry(
                        at=at,
                        actor=by,
                        action=audit.SUBSCRIPTION_STATUS,
                        details={"subscription_id": subscription_id, "status": status.value},
                    ),
                )
        return _subscription_of(rows[0]) if rows else None

    async def rotate_subscription_secret(
        self,
        subscription_id: str,
        secret: str,
        previous_until: datetime,
        at: datetime,
        *,
        by: audit.Actor,
    ) -> Subscription | None:
        """The secret replaced by ``secret``, the one it replaces kept signing until
        ``previous_until``; ``None`` when there is no such subscription."""
        async with self._session() as conn, transaction(conn):
            changed = await run(
                conn,
                "UPDATE subscriptions SET previous_secret = secret, secret = ?, "
                "previous_until = ?, updated_at = ? WHERE subscription_id = ?",
                (secret, to_text(previous_until), to_text(at), subscription_id),
            )
            rows = await fetch(conn, _ONE, (subscription_id,))
            if changed:
                await append_to_audit(
                    conn,
                    audit.AuditEntry(
                        at=at,
                        actor=by,
                        action=audit.SUBSCRIPTION_SECRET_ROTATED,
                        details={
                            "subscription_id": subscription_id,
                            "previous_until": to_text(previous_until),
                        },
                    ),
                )
        return _subscription_of(rows[0]) if rows else None

    async def forget_replaced_secrets(self, now: datetime) -> int:
        """Erases every replaced secret whose overlap has ended; answers how many."""
        async with self._session() as conn, transaction(conn):
            return await run(
                conn,
                "UPDATE subscriptions SET previous_secret = NULL, previous_until = NULL "
                "WHERE previous_until IS NOT NULL AND previous_until <= ?",
                (to_text(now),),
            )

    async def remove_subscription(self, subscription_id: str, *, by: audit.Actor) -> bool:
        async with self._session() as conn, transaction(conn):
            found = await fetch(
                conn, "SELECT 1 FROM subscriptions WHERE subscription_id = ?", (subscription_id,)
            )
            await run(
                conn, "DELETE FROM subscriptions WHERE subscription_id = ?", (subscription_id,)
            )
            if found:
                await append_to_audit(
                    conn,
                    audit.AuditEntry(
                        at=datetime.now(UTC),
                        actor=by,
                        action=audit.SUBSCRIPTION_REMOVED,
                        details={"subscription_id": subscription_id},
                    ),
                )
        return bool(found)
