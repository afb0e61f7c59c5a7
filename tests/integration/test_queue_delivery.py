import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from queue_support import (
    SECRET,
    AiohttpPusher,
    Broker,
    FakeStore,
    Recipient,
    Reply,
    close_broker_connection,
    message_count,
    next_message,
    unused_port,
    utcnow,
)
from standardwebhooks import Webhook

from gateway.model import AttemptOutcome, Destination, OutboundMessage, PushResponse
from gateway.ports import Pusher
from gateway.queue.delivery_worker import DeliveryWorker, QuickRetry, RecipientEndpoint
from gateway.queue.publisher import Publisher, PublishFailed
from gateway.queue.topology import Topology

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[TestServer]]
FAST = QuickRetry(attempts=2, wait_s=0.05, max_wait_s=2.0)


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with Broker.opened() as opened:
        yield opened


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@dataclass
class Rig:
    """A declared topology, a publisher, a recipient server and a running worker."""

    broker: Broker
    topology: Topology
    publisher: Publisher
    recipient: Recipient
    store: FakeStore
    worker: DeliveryWorker

    async def send(
        self,
        message_id: str,
        *,
        case_id: str = "urn:kdrt:case:1",
        seq: int = 1,
        deadline_at: datetime | None = None,
    ) -> None:
        await self.publisher.publish(
            OutboundMessage(
                destination=Destination.DELIVER,
                routing_key="c112",
                message_id=message_id,
                case_id=case_id,
                sequence=seq,
                body=f'{{"distribution_id":"{message_id}","sequence":{seq}}}'.encode(),
                deadline_at=deadline_at,
            )
        )


RigFactory = Callable[..., Awaitable[Rig]]


async def send_once_reconnected(r: Rig, message_id: str, *, timeout_s: float = 15.0) -> None:
    """Publish as the outbox relay does after a dropped connection: until confirmed."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                await r.send(message_id)
            except PublishFailed as failed:
                if failed.reason != "connection":
                    raise
                await asyncio.sleep(0.2)
            else:
                return


@pytest.fixture
async def rig(
    broker: Broker, session: aiohttp.ClientSession, aiohttp_server: ServerFactory
) -> AsyncIterator[RigFactory]:
    workers: list[DeliveryWorker] = []

    async def build(
        *replies: Reply,
        quick: QuickRetry = FAST,
        ladder: tuple[int, ...] = (1,),
        delivery_limit: int = 5,
        pusher: Pusher | None = None,
        on_gone: Callable[[], Awaitable[None]] | None = None,
    ) -> Rig:
        topology = await broker.topology(ladder=ladder, delivery_limit=delivery_limit)
        recipient = Recipient(*replies)
        server = await aiohttp_server(recipient.app())
        store = FakeStore()
        publisher = Publisher(broker.connection, topology)
        worker = DeliveryWorker(
            broker.connection,
            publisher,
            topology,
            RecipientEndpoint("c112", str(server.make_url("/hook")), (SECRET,)),
            pusher or AiohttpPusher(session),
            store,
            clock=utcnow,
            prefetch=10,
            quick_retry=quick,
            on_gone=on_gone,
        )
        await worker.start()
        workers.append(worker)
        return Rig(broker, topology, publisher, recipient, store, worker)

    yield build
    for worker in workers:
        await worker.stop(grace_s=2.0)


def outcomes(store: FakeStore) -> list[tuple[int, AttemptOutcome, int | None]]:
    return [(a.attempt, a.outcome, a.status_code) for a in store.attempts]


async def test_delivers_a_signed_push_and_acks(rig: RigFactory) -> None:
    r = await rig()

    await r.send("msg-1")

    [received] = await r.recipient.wait_for(1)
    Webhook(SECRET).verify(received.body, received.headers)
    assert received.body == b'{"distribution_id":"msg-1","sequence":1}'
    assert received.headers["webhook-id"] == "msg-1"
    assert received.headers["idempotency-key"] == "msg-1"
    await r.store.wait_for_attempts(1)
    [attempt] = r.store.attempts
    assert (attempt.distribution_id, attempt.case_id, attempt.recipient) == (
        "msg-1",
        "urn:kdrt:case:1",
        "c112",
    )
    assert (attempt.attempt, attempt.outcome, attempt.status_code) == (
        1,
        AttemptOutcome.DELIVERED,
        200,
    )
    assert attempt.error_class is None
    await r.worker.stop()
    assert await message_count(r.broker.connection, r.topology.deliver_queue("c112")) == 0


async def test_a_copy_of_a_delivered_message_is_acked_without_a_push(rig: RigFactory) -> None:
    r = await rig()
    await r.send("msg-1")
    await r.recipient.wait_for(1)
    await r.store.wait_for_attempts(1)

    await r.send("msg-1")  # as the relay does when a confirm came too late
    await r.send("msg-2", seq=2)

    await r.recipient.wait_for(2)
    await r.store.wait_for_attempts(2)
    await r.worker.stop()
    assert [m.headers["webhook-id"] for m in r.recipient.received] == ["msg-1", "msg-2"]
    assert [a.distribution_id for a in r.store.attempts] == ["msg-1", "msg-2"]
    assert await message_count(r.broker.connection, r.topology.deliver_queue("c112")) == 0


async def test_a_503_is_retried_in_process_then_delivered(rig: RigFactory) -> None:
    r = await rig(Reply(503, "busy"))

    await r.send("msg-1")

    first, second = await r.recipient.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "msg-1"
    await r.store.wait_for_attempts(2)
    assert outcomes(r.store) == [
        (1, AttemptOutcome.RETRY, 503),
        (2, AttemptOutcome.DELIVERED, 200),
    ]
    assert r.store.attempts[0].error_class == "http_503"
    assert r.store.attempts[0].next_try_at is not None


async def test_a_short_retry_after_is_honoured(rig: RigFactory) -> None:
    r = await rig(Reply(429, headers={"Retry-After": "1"}))

    await r.send("msg-1")

    first, second = await r.recipient.wait_for(2)
    assert second.at - first.at >= 0.95


async def test_a_400_is_parked_with_its_reason(rig: RigFactory) -> None:
    r = await rig(Reply(400, "content.location: required"))

    await r.send("msg-1")

    parked = await next_message(r.broker.connection, r.topology.parking_queue)
    assert parked.message_id == "msg-1"
    assert parked.body == b'{"distribution_id":"msg-1","sequence":1}'
    assert parked.headers["x-park-reason"] == "http_400: content.location: required"
    assert parked.headers["x-recipient"] == "c112"
    assert parked.headers["x-attempt"] == 1
    assert parked.headers["x-case-id"] == "urn:kdrt:case:1"
    assert len(r.recipient.received) == 1
    assert outcomes(r.store) == [(1, AttemptOutcome.PARKED, 400)]
    assert r.store.attempts[0].reason == "http_400: content.location: required"


async def test_exhausted_quick_retries_go_round_the_ladder_and_come_back(
    rig: RigFactory,
) -> None:
    r = await rig(Reply(503), Reply(503), ladder=(1,))

    await r.send("msg-1")

    first, _, third = await r.recipient.wait_for(3)
    assert third.at - first.at >= 0.9
    await r.store.wait_for_attempts(3)
    assert outcomes(r.store) == [
        (1, AttemptOutcome.RETRY, 503),
        (2, AttemptOutcome.RETRY, 503),
        (3, AttemptOutcome.DELIVERED, 200),
    ]
    ladder_row = r.store.attempts[1]
    assert ladder_row.next_try_at is not None
    assert (ladder_row.next_try_at - ladder_row.at).total_seconds() >= 1.0
    Webhook(SECRET).verify(third.body, third.headers)


class _RefusedFirst:
    """The first push goes to a port nobody listens on: a real connection error."""

    def __init__(self, pusher: AiohttpPusher) -> None:
        self._pusher = pusher
        self._refused = False

    async def push(self, url: str, body: bytes, headers: Mapping[str, str]) -> PushResponse:
        if not self._refused:
            self._refused = True
            url = f"http://127.0.0.1:{unused_port()}/hook"
        return await self._pusher.push(url, body, headers)


async def test_a_message_parked_after_a_ladder_round_carries_its_counts(
    rig: RigFactory,
) -> None:
    r = await rig(Reply(503), Reply(503), Reply(403, "forbidden"), ladder=(1,))
    deadline = utcnow() - timedelta(seconds=1)

    await r.send("msg-1", deadline_at=deadline)

    parked = await next_message(r.broker.connection, r.topology.parking_queue)
    assert parked.headers["x-attempt"] == 2
    assert parked.headers["x-tries"] == 3
    assert parked.headers["x-park-reason"] == "http_403: forbidden"
    assert parked.headers["x-deadline-at"] == deadline.isoformat()
    assert not [h for h in parked.headers if "death" in h]
    assert outcomes(r.store)[-1] == (3, AttemptOutcome.PARKED, 403)


async def test_a_connection_error_is_retried_like_a_5xx(
    rig: RigFactory, session: aiohttp.ClientSession
) -> None:
    r = await rig(pusher=_RefusedFirst(AiohttpPusher(session)), quick=QuickRetry(attempts=1))

    await r.send("msg-1")

    await r.recipient.wait_for(1)
    await r.store.wait_for_attempts(2)
    assert [(a.outcome, a.error_class) for a in r.store.attempts] == [
        (AttemptOutcome.RETRY, "connection"),
        (AttemptOutcome.DELIVERED, None),
    ]


async def test_a_410_to_a_subscription_parks_the_message_stops_consuming_and_says_so(
    rig: RigFactory,
) -> None:
    told: list[str | None] = []
    r: Rig

    async def gone() -> None:
        told.append(r.worker.gone_reason)

    r = await rig(Reply(410, "unsubscribed"), on_gone=gone)

    await r.send("msg-1")
    parked = await next_message(r.broker.connection, r.topology.parking_queue)
    await r.send("msg-2")

    assert parked.headers["x-park-reason"] == "http_410: unsubscribed"
    assert r.worker.gone_reason == "http_410: unsubscribed"
    assert not r.worker.consuming
    await asyncio.sleep(0.3)
    assert await message_count(r.broker.connection, r.topology.deliver_queue("c112")) == 1
    assert len(r.recipient.received) == 1
    assert told == ["http_410: unsubscribed"]
    assert [a.outcome for a in r.store.attempts] == [AttemptOutcome.GONE]


async def test_a_410_from_a_recipient_that_is_no_subscription_parks_as_any_4xx(
    rig: RigFactory,
) -> None:
    """112 is configured, not subscribed: one 410 (a proxy's, a maintenance page's) must
    not stop every later report reaching it."""
    r = await rig(Reply(410, "gone for maintenance"))

    await r.send("msg-1")
    parked = await next_message(r.broker.connection, r.topology.parking_queue)
    await r.send("msg-2")

    assert parked.headers["x-park-reason"] == "http_410: gone for maintenance"
    received = await r.recipient.wait_for(2)
    assert [m.headers["webhook-id"] for m in received] == ["msg-1", "msg-2"]
    assert r.worker.consuming
    assert r.worker.gone_reason is None
    await r.store.wait_for_attempts(2)
    assert [a.outcome for a in r.store.attempts] == [
        AttemptOutcome.PARKED,
        AttemptOutcome.DELIVERED,
    ]


class _Crashing:
    """A pusher with a bug: every push raises something no one expects."""

    def __init__(self) -> None:
        self.calls = 0

    async def push(self, url: str, body: bytes, headers: Mapping[str, str]) -> PushResponse:
        self.calls += 1
        raise KeyError("bug")


async def test_a_handler_that_always_crashes_ends_in_parking_via_the_delivery_limit(
    rig: RigFactory,
) -> None:
    crashing = _Crashing()
    r = await rig(pusher=crashing, delivery_limit=2)

    await r.send("msg-1")

    parked = await next_message(r.broker.connection, r.topology.parking_queue)
    assert parked.message_id == "msg-1"
    assert parked.headers["x-first-death-reason"] == "delivery_limit"
    assert parked.headers["x-first-death-queue"] == r.topology.deliver_queue("c112")
    assert crashing.calls == 3
    assert r.store.attempts == []


async def test_messages_of_one_case_are_pushed_one_at_a_time_in_order(rig: RigFactory) -> None:
    r = await rig(Reply(200, delay_s=0.3), Reply(200, delay_s=0.1), Reply(200))

    for seq in (1, 2, 3):
        await r.send(f"msg-{seq}", seq=seq)

    await r.recipient.wait_for(3)
    assert r.recipient.events == [
        ("start", "msg-1"),
        ("end", "msg-1"),
        ("start", "msg-2"),
        ("end", "msg-2"),
        ("start", "msg-3"),
        ("end", "msg-3"),
    ]


async def test_different_cases_are_pushed_in_parallel(rig: RigFactory) -> None:
    r = await rig(Reply(200, delay_s=1.0), Reply(200, delay_s=1.0))

    await r.send("msg-a", case_id="urn:kdrt:case:a")
    await r.send("msg-b", case_id="urn:kdrt:case:b")

    await r.recipient.wait_for(2)
    # the second push starts while the first is still waiting for its answer
    assert [kind for kind, _ in r.recipient.events] == ["start", "start", "end", "end"]


async def test_the_worker_consumes_again_after_the_broker_drops_its_connection(
    rig: RigFactory,
) -> None:
    r = await rig()
    await r.send("msg-1")
    await r.recipient.wait_for(1)

    await close_broker_connection(f"test-{r.broker.ns}")
    await send_once_reconnected(r, "msg-2")

    await r.recipient.wait_for(2, timeout_s=15)
    await r.store.wait_for_attempts(2)
    assert [a.distribution_id for a in r.store.attempts] == ["msg-1", "msg-2"]
