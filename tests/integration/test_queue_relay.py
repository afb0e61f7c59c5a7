import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from queue_support import (
    Broker,
    FakeStore,
    close_broker_connection,
    message_count,
    next_message,
    utcnow,
)

from gateway.model import Destination, OutboundMessage, OutboxRow
from gateway.queue.publisher import Publisher, PublishFailed
from gateway.queue.relay import OutboxRelay
from gateway.queue.topology import Topology

pytestmark = pytest.mark.integration


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with Broker.opened() as opened:
        yield opened


def row(row_id: int, recipient: str = "c112") -> OutboxRow:
    return OutboxRow(
        id=row_id,
        message=OutboundMessage(
            destination=Destination.DELIVER,
            routing_key=recipient,
            message_id=f"msg-{row_id}",
            case_id="urn:kdrt:case:1",
            sequence=row_id,
            body=b"{}",
        ),
    )


async def take(broker: Broker, topology: Topology, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        message = await next_message(broker.connection, topology.deliver_queue("c112"))
        assert message.message_id is not None
        ids.append(message.message_id)
    return ids


async def settled(store: FakeStore, ids: set[int], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while set(store.published) != ids:  # noqa: ASYNC110 — the fake store has no signal
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_relay(
    broker: Broker, topology: Topology, store: FakeStore, **options: Any
) -> AsyncIterator[OutboxRelay]:
    """A relay publishing ``store``'s outbox to ``topology``, stopped after the block."""
    relay = OutboxRelay(
        store,
        Publisher(broker.connection, topology),
        claimant="test",
        clock=utcnow,
        **options,
    )
    relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


async def test_a_wake_publishes_at_once_in_order_and_marks_rows(broker: Broker) -> None:
    topology = await broker.topology()
    store = FakeStore()
    async with running_relay(broker, topology, store, poll_interval_s=60, batch=2) as relay:
        await asyncio.sleep(0.1)
        store.outbox.extend(row(i) for i in (1, 2, 3, 4, 5))
        relay.wake()

        assert await take(broker, topology, 5) == ["msg-1", "msg-2", "msg-3", "msg-4", "msg-5"]
        await settled(store, {1, 2, 3, 4, 5})


async def claimed_once(store: FakeStore) -> None:
    await claimed(store, 1)


async def claimed_twice(store: FakeStore) -> None:
    await claimed(store, 2)


async def claimed(store: FakeStore, times: int) -> None:
    async with asyncio.timeout(10):
        while store.claims < times:  # noqa: ASYNC110 — the fake store has no signal
            await asyncio.sleep(0.02)


async def test_rows_handed_over_are_published_without_a_claim(broker: Broker) -> None:
    topology = await broker.topology()
    store = FakeStore()
    async with running_relay(broker, topology, store, poll_interval_s=60) as relay:
        await claimed_once(store)  # the first round claims whatever a crash left

        store.outbox.extend(row(i) for i in (1, 2, 3))
        relay.hand(store.outbox[:2])
        relay.hand(store.outbox[2:])

        assert await take(broker, topology, 3) == ["msg-1", "msg-2", "msg-3"]
        await settled(store, {1, 2, 3})
        assert store.claims == 1


async def test_rows_handed_over_during_a_claim_and_the_claimed_rows_all_go_out(
    broker: Broker,
) -> None:
    topology = await broker.topology()
    store = FakeStore()
    async with running_relay(broker, topology, store, poll_interval_s=60) as relay:
        await claimed_once(store)
        store.outbox.extend([row(1), row(2)])
        store.held.add(2)
        relay.wake()  # for row 1, written by someone else
        relay.hand(store.outbox[1:])

        assert sorted(await take(broker, topology, 2)) == ["msg-1", "msg-2"]
        await settled(store, {1, 2}, timeout_s=5)
        assert store.claims == 2


class GatedPublisher:
    """Confirms ``gated`` only once ``gate`` is set, every other message at once."""

    def __init__(self, gated: str) -> None:
        self.gated = gated
        self.gate = asyncio.Event()
        self.confirmed: list[str] = []

    async def publish(self, message: OutboundMessage) -> None:
        if message.message_id == self.gated:
            await self.gate.wait()
        self.confirmed.append(message.message_id)


async def test_rows_handed_over_do_not_wait_for_a_claimed_batch_to_be_confirmed() -> None:
    store = FakeStore()
    publisher = GatedPublisher(gated="msg-1")
    relay = OutboxRelay(store, publisher, claimant="test", poll_interval_s=60, clock=utcnow)
    relay.start()
    try:
        await claimed_once(store)
        store.outbox.extend([row(1), row(2)])
        store.held.add(2)
        relay.wake()  # claims row 1, whose confirm is held back
        await claimed_twice(store)
        relay.hand(store.outbox[1:])

        await settled(store, {2})
        assert publisher.confirmed == ["msg-2"]
        publisher.gate.set()
        await settled(store, {1, 2})
    finally:
        await relay.stop()


async def test_rows_handed_over_past_the_limit_are_claimed_in_order(broker: Broker) -> None:
    topology = await broker.topology()
    store = FakeStore()
    async with running_relay(broker, topology, store, poll_interval_s=60, hand_limit=2) as relay:
        await claimed_once(store)
        store.outbox.extend(row(i) for i in range(1, 6))
        store.held.update(range(1, 6))
        for start in (0, 2, 4):
            relay.hand(store.outbox[start : start + 2])

        assert await take(broker, topology, 5) == [f"msg-{i}" for i in range(1, 6)]
        await settled(store, set(range(1, 6)))
        assert store.claims == 2
        assert await message_count(broker.connection, topology.deliver_queue("c112")) == 0


async def test_after_a_failed_publish_rows_handed_over_wait_their_turn(broker: Broker) -> None:
    topology = await broker.topology()
    store = FakeStore()
    async with running_relay(broker, topology, store, poll_interval_s=60) as relay:
        await claimed_once(store)
        store.outbox.extend([row(1), row(2, recipient="nobody")])
        relay.hand(store.outbox)
        assert await take(broker, topology, 1) == ["msg-1"]

        store.outbox[1] = row(2)  # msg-2 can be routed again
        store.outbox.append(row(3))
        relay.hand(store.outbox[2:])

        await settled(store, {1, 2, 3})
        assert await take(broker, topology, 2) == ["msg-2", "msg-3"]


async def test_a_row_claimed_before_it_was_handed_over_is_published_once(
    broker: Broker,
) -> None:
    topology = await broker.topology()
    store = FakeStore()
    async with running_relay(broker, topology, store, poll_interval_s=60) as relay:
        await claimed_once(store)
        store.outbox.append(row(1))
        relay.wake()
        relay.hand(store.outbox)
        await settled(store, {1})

        store.outbox.append(row(2))
        relay.hand(store.outbox[1:])
        await settled(store, {1, 2})

        assert await take(broker, topology, 2) == ["msg-1", "msg-2"]
        assert await message_count(broker.connection, topology.deliver_queue("c112")) == 0


async def test_rows_stay_pending_while_publishing_fails(broker: Broker) -> None:
    topology = await broker.topology()
    store = FakeStore()
    store.outbox.extend([row(1), row(2, recipient="nobody"), row(3)])
    async with running_relay(broker, topology, store, poll_interval_s=0.1):
        assert await take(broker, topology, 1) == ["msg-1"]
        await asyncio.sleep(0.5)

        assert set(store.published) == {1}, "nothing after the failed row counts as published"
        store.outbox[1] = row(2)
        await settled(store, {1, 2, 3})
        # msg-3 went out beside the failing msg-2 and goes out again after it: the
        # worker's per-case order guard, not the broker, keeps 3 from overtaking 2
        left = await message_count(broker.connection, topology.deliver_queue("c112"))
        arrived = await take(broker, topology, left)
        assert "msg-2" in arrived
        assert arrived[arrived.index("msg-2") + 1 :] == ["msg-3"]


async def test_a_large_batch_is_published_in_order(broker: Broker) -> None:
    topology = await broker.topology()
    store = FakeStore()
    async with running_relay(broker, topology, store, poll_interval_s=60, batch=500) as relay:
        store.outbox.extend(row(i) for i in range(1, 1001))
        relay.wake()

        await settled(store, set(range(1, 1001)))
        assert await take(broker, topology, 1000) == [f"msg-{i}" for i in range(1, 1001)]


async def test_the_relay_survives_a_dropped_broker_connection(broker: Broker) -> None:
    topology = await broker.topology()
    store = FakeStore()
    async with running_relay(broker, topology, store, poll_interval_s=0.2) as relay:
        store.outbox.append(row(1))
        relay.wake()
        await settled(store, {1})

        await close_broker_connection(f"test-{broker.ns}")
        store.outbox.extend([row(2), row(3)])
        relay.wake()

        await settled(store, {1, 2, 3}, timeout_s=15)
        assert await take(broker, topology, 3) == ["msg-1", "msg-2", "msg-3"]


class WindowedPublisher:
    """Confirms after a moment; refuses one message; records how many were in flight."""

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.in_flight = 0
        self.most_in_flight = 0

    async def publish(self, message: OutboundMessage) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            if message.message_id == self.refuse:
                raise PublishFailed("confirm_timeout", "deliver", message.routing_key)
        finally:
            self.in_flight -= 1


async def test_confirms_are_awaited_a_window_at_a_time_and_a_failure_keeps_the_rest() -> None:
    store = FakeStore()
    store.outbox.extend(row(i) for i in range(1, 8))
    publisher = WindowedPublisher(refuse="msg-5")
    relay = OutboxRelay(
        store, publisher, claimant="test", poll_interval_s=60, window=3, clock=utcnow
    )

    with pytest.raises(PublishFailed):
        await relay.drain()

    assert publisher.most_in_flight == 3
    assert set(store.published) == {1, 2, 3, 4}
