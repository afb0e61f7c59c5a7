"""Outbox rows claimed by relays sharing one store (SQLite and PostgreSQL): no row is
published twice while its relay lives, and a dead relay's rows are taken over."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from samples import sealer_for_test, valid_01_case

from gateway.adapters.store import SqlStore
from gateway.model import AcceptedReport, Destination, OutboundMessage
from gateway.queue.relay import OutboxRelay

SEALER = sealer_for_test()

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


async def store_with_rows(url: str, count: int) -> SqlStore:
    store = await SqlStore.connect(url, sealer=SEALER)
    case = valid_01_case()
    await store.accept_report(
        AcceptedReport(
            source_system="si-lacak-perak",
            source_reference=case.source.reference,
            raw=b"{}",
            case=case,
            outgoing=tuple(
                OutboundMessage(
                    destination=Destination.DELIVER,
                    routing_key="c112",
                    message_id=f"msg-{n}",
                    case_id=case.case_id,
                    sequence=n,
                    body=b"{}",
                )
                for n in range(1, count + 1)
            ),
        )
    )
    return store


async def test_claimants_get_disjoint_rows_until_a_lease_passes(store_url: str) -> None:
    store = await store_with_rows(store_url, 5)
    try:
        first = await store.claim_outbox("a", 3, now=T0, lease_s=30)
        second = await store.claim_outbox("b", 3, now=T0, lease_s=30)
        assert [r.message.message_id for r in first] == ["msg-1", "msg-2", "msg-3"]
        assert [r.message.message_id for r in second] == ["msg-4", "msg-5"]
        assert await store.claim_outbox("c", 3, now=T0 + timedelta(seconds=29), lease_s=30) == []

        await store.release_outbox("b", [second[1].id])
        assert [r.id for r in await store.claim_outbox("c", 3, now=T0, lease_s=30)] == [
            second[1].id
        ]

        await store.mark_published([first[0].id], T0)
        taken_over = await store.claim_outbox("c", 9, now=T0 + timedelta(seconds=31), lease_s=30)
        assert [r.message.message_id for r in taken_over] == ["msg-2", "msg-3", "msg-4", "msg-5"]
    finally:
        await store.close()


class Recorder:
    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, message: OutboundMessage) -> None:
        await asyncio.sleep(0)
        self.published.append(message.message_id)


async def test_two_relays_on_one_store_publish_each_row_once(store_url: str) -> None:
    stores = [
        await store_with_rows(store_url, 400),
        await SqlStore.connect(store_url, sealer=SEALER),
    ]
    recorders = [Recorder(), Recorder()]
    relays = [
        OutboxRelay(
            store,
            recorder,
            claimant=f"relay-{n}",
            poll_interval_s=60,
            batch=7,
            clock=lambda: datetime.now(UTC),
        )
        for n, (store, recorder) in enumerate(zip(stores, recorders, strict=True))
    ]
    try:
        await asyncio.gather(*(relay.drain() for relay in relays))

        published = recorders[0].published + recorders[1].published
        assert sorted(published) == sorted(f"msg-{n}" for n in range(1, 401))
        assert recorders[0].published, "both relays should have taken part"
        assert recorders[1].published, "both relays should have taken part"
        assert await stores[0].outbox_lag() == 0
    finally:
        for store in stores:
            await store.close()
