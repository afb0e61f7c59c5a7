"""Subscriptions in the store, on SQLite and PostgreSQL: a store from before the 'gone'
status (0011) keeps its subscriptions and its one-AMQP-queue-per-agency rule, a
subscription is marked gone only while it is active, and a new secret keeps the one it
replaces for the overlap, and no longer after it."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from samples import sealer_for_test

from contracts.envelope import RecipientRole
from contracts.subscription import DeliveryMode, SubscriptionStatus
from gateway import audit
from gateway.adapters.sql_db import connect
from gateway.adapters.store import SqlStore
from gateway.adapters.store.schema import apply_migrations, load_migrations
from gateway.adapters.store.time_text import to_text
from gateway.partners import Subscription

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
GONE_VERSION = 11
SEALER = sealer_for_test()
ADMIN = audit.Actor("admin", "tok_0123456789ab")
ACTIVE, PAUSED, GONE = (
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAUSED,
    SubscriptionStatus.GONE,
)


def webhook(subscription_id: str, status: SubscriptionStatus) -> Subscription:
    return Subscription(
        subscription_id=subscription_id,
        agency_id=f"agency-{subscription_id}",
        role=RecipientRole.SOCIAL,
        patterns=("case.#",),
        mode=DeliveryMode.WEBHOOK,
        status=status,
        created_at=T0,
        updated_at=T0,
        url="https://partner.example/hook",
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )


def amqp(subscription_id: str, agency_id: str) -> Subscription:
    return Subscription(
        subscription_id=subscription_id,
        agency_id=agency_id,
        role=RecipientRole.POLICE,
        patterns=("case.created.#",),
        mode=DeliveryMode.AMQP,
        status=ACTIVE,
        created_at=T0,
        updated_at=T0,
    )


async def test_a_store_from_before_gone_keeps_its_subscriptions(store_url: str) -> None:
    db = await connect(store_url)
    try:
        async with db.session() as conn:
            before = [m for m in load_migrations() if m.version < GONE_VERSION]
            await apply_migrations(conn, before, db.dialect)
    finally:
        await db.close()
    old = SqlStore(await connect(store_url), SEALER)
    kept = [webhook("sub-a", ACTIVE), webhook("sub-b", PAUSED), amqp("sub-c", "polres")]
    try:
        for subscription in kept:
            await old.add_subscription(subscription, by=ADMIN)
    finally:
        await old.close()

    store = await SqlStore.connect(store_url, sealer=SEALER)
    try:
        assert await store.subscriptions() == kept
        with pytest.raises(Exception, match=r"(?i)unique"):
            await store.add_subscription(amqp("sub-d", "polres"), by=ADMIN)
        assert await store.subscriptions() == kept
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("status", "after"),
    [(ACTIVE, GONE), (PAUSED, PAUSED), (GONE, GONE)],
)
async def test_only_an_active_subscription_becomes_gone(
    store_url: str, status: SubscriptionStatus, after: SubscriptionStatus
) -> None:
    store = await SqlStore.connect(store_url, sealer=SEALER)
    try:
        await store.add_subscription(webhook("sub-a", status), by=ADMIN)
        at = T0 + timedelta(minutes=1)

        changed = await store.set_subscription_status(
            "sub-a", GONE, at, by=audit.SYSTEM, only_from=ACTIVE
        )

        assert changed is not None
        assert changed.status is after
        assert await store.subscription("sub-a") == changed
        assert (
            await store.set_subscription_status(
                "sub-x", GONE, at, by=audit.SYSTEM, only_from=ACTIVE
            )
            is None
        )
    finally:
        await store.close()


async def test_a_new_secret_keeps_the_one_it_replaces_until_the_overlap_ends(
    store_url: str,
) -> None:
    store = await SqlStore.connect(store_url, sealer=SEALER)
    try:
        before = webhook("sub-a", ACTIVE)
        await store.add_subscription(before, by=ADMIN)
        at, until = T0 + timedelta(minutes=1), T0 + timedelta(days=1)
        new = "whsec_" + "B" * 32

        rotated = await store.rotate_subscription_secret("sub-a", new, until, at, by=ADMIN)

        assert rotated is not None
        assert (rotated.secret, rotated.previous_secret) == (new, before.secret)
        assert (rotated.previous_until, rotated.updated_at) == (until, at)
        assert await store.subscription("sub-a") == rotated
        [row] = [r for r in await store.audit_rows() if r.action == "subscription.secret_rotated"]
        assert json.loads(row.details) == {
            "subscription_id": "sub-a",
            "previous_until": to_text(until),
        }
        assert new not in str(row)
        assert str(before.secret) not in str(row)
        assert await store.rotate_subscription_secret("sub-x", new, until, at, by=ADMIN) is None
    finally:
        await store.close()


async def test_a_replaced_secret_is_erased_once_its_overlap_ended(store_url: str) -> None:
    store = await SqlStore.connect(store_url, sealer=SEALER)
    try:
        for subscription_id in ("sub-a", "sub-b", "sub-c"):
            await store.add_subscription(webhook(subscription_id, ACTIVE), by=ADMIN)
        new = "whsec_" + "B" * 32
        at = T0 + timedelta(minutes=1)
        ended, running = T0 + timedelta(hours=1), T0 + timedelta(days=1)
        await store.rotate_subscription_secret("sub-a", new, ended, at, by=ADMIN)
        await store.rotate_subscription_secret("sub-b", new, running, at, by=ADMIN)

        assert await store.forget_replaced_secrets(ended - timedelta(seconds=1)) == 0
        assert await store.forget_replaced_secrets(ended) == 1

        a, b, c = [await store.subscription(s) for s in ("sub-a", "sub-b", "sub-c")]
        assert a is not None
        assert b is not None
        assert c is not None
        assert (a.secret, a.previous_secret, a.previous_until) == (new, None, None)
        assert (b.secret, b.previous_secret, b.previous_until) == (
            new,
            webhook("", ACTIVE).secret,
            running,
        )
        assert (c.previous_secret, c.previous_until) == (None, None)
        assert await store.forget_replaced_secrets(ended) == 0
    finally:
        await store.close()
