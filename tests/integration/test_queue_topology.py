import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from queue_support import Broker, message_count, next_message, rabbitmqctl

from gateway.model import Destination, OutboundMessage
from gateway.queue.connection import AmqpConnection, NotConnected
from gateway.queue.publisher import Publisher, PublishFailed

pytestmark = pytest.mark.integration


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with Broker.opened() as opened:
        yield opened


def outbound(
    destination: Destination, routing_key: str, *, deadline_at: datetime | None = None
) -> OutboundMessage:
    return OutboundMessage(
        destination=destination,
        routing_key=routing_key,
        message_id="0b7f0d8e-1c1d-4a44-9f0e-6c1f5d1d2a01",
        case_id="urn:kdrt:case:1",
        sequence=3,
        body=b'{"kind":"report"}',
        deadline_at=deadline_at,
    )


async def test_declaring_twice_leaves_the_intended_queues(broker: Broker) -> None:
    topology = await broker.topology(recipients=("c112", "police"), ladder=(5, 30))
    await broker.connection.declare(topology)

    listing = await rabbitmqctl(
        "list_queues", "name", "type", "arguments", "-q", "--formatter", "json"
    )
    queues = {q["name"]: q for q in json.loads(listing) if q["name"].startswith(broker.ns + ".")}
    assert set(queues) == {
        f"{broker.ns}.unroutable",
        f"{broker.ns}.parking",
        f"{broker.ns}.deliver.c112",
        f"{broker.ns}.deliver.police",
        f"{broker.ns}.retry.5s",
        f"{broker.ns}.retry.30s",
    }
    assert {q["type"] for q in queues.values()} == {"quorum"}
    deliver = {a[0]: a[2] for a in queues[f"{broker.ns}.deliver.c112"]["arguments"]}
    assert deliver["x-delivery-limit"] == 5
    assert deliver["x-dead-letter-exchange"] == f"{broker.ns}.dlx"
    assert deliver["x-dead-letter-strategy"] == "at-least-once"
    assert deliver["x-overflow"] == "reject-publish"
    retry = {a[0]: a[2] for a in queues[f"{broker.ns}.retry.30s"]["arguments"]}
    assert retry["x-message-ttl"] == 30_000
    assert retry["x-dead-letter-exchange"] == f"{broker.ns}.deliver"


async def test_declaring_answers_the_consumers_the_broker_counts(broker: Broker) -> None:
    topology = await broker.topology(recipients=("c112",), ladder=(5,))

    async def take(message: AbstractIncomingMessage) -> None:
        await message.ack()

    async with broker.connection.connection.channel() as channel:
        queue = await channel.get_queue(topology.deliver_queue("c112"))
        await queue.consume(take)
        counts = await broker.connection.declare(topology)
    assert counts == {name: 0 for name in counts} | {topology.deliver_queue("c112"): 1}
    assert set(counts) == {q.name for q in topology.queues()}


async def test_deliver_message_lands_on_the_recipient_queue_with_its_headers(
    broker: Broker,
) -> None:
    topology = await broker.topology(recipients=("c112", "police"))
    publisher = Publisher(broker.connection, topology)
    deadline = datetime(2025, 3, 4, 5, 11, 7, tzinfo=UTC)

    await publisher.publish(outbound(Destination.DELIVER, "c112", deadline_at=deadline))

    message = await next_message(broker.connection, topology.deliver_queue("c112"))
    assert message.body == b'{"kind":"report"}'
    assert message.message_id == "0b7f0d8e-1c1d-4a44-9f0e-6c1f5d1d2a01"
    assert message.content_type == "application/json"
    assert message.delivery_mode == 2
    assert message.headers["x-case-id"] == "urn:kdrt:case:1"
    assert message.headers["x-sequence"] == 3
    assert message.headers["x-attempt"] == 1
    assert message.headers["x-deadline-at"] == "2025-03-04T05:11:07+00:00"
    assert await message_count(broker.connection, topology.deliver_queue("police")) == 0


async def test_unroutable_delivery_fails_the_publish(broker: Broker) -> None:
    topology = await broker.topology(recipients=("c112",))
    publisher = Publisher(broker.connection, topology)

    with pytest.raises(PublishFailed) as failed:
        await publisher.publish(outbound(Destination.DELIVER, "nobody"))

    assert failed.value.reason == "unroutable"
    # the channel stays usable
    await publisher.publish(outbound(Destination.DELIVER, "c112"))
    assert await message_count(broker.connection, topology.deliver_queue("c112")) == 1


async def test_event_nobody_listens_to_goes_to_the_unroutable_queue(broker: Broker) -> None:
    topology = await broker.topology()
    publisher = Publisher(broker.connection, topology)

    await publisher.publish(outbound(Destination.EVENTS, "case.created.cipondoh.high"))

    message = await next_message(broker.connection, topology.unroutable_queue)
    assert message.routing_key == "case.created.cipondoh.high"
    assert message.exchange == topology.events_exchange


async def test_publishing_to_a_missing_exchange_fails_the_publish(broker: Broker) -> None:
    topology = await broker.topology()
    publisher = Publisher(broker.connection, topology, confirm_timeout_s=2.0)

    with pytest.raises(PublishFailed) as failed:
        await publisher.send(f"{broker.ns}.nowhere", "c112", _plain())

    assert failed.value.reason == "exchange_missing"


async def test_using_the_connection_before_connecting_says_so() -> None:
    connection = AmqpConnection("amqp://guest:guest@127.0.0.1:5672/")

    with pytest.raises(NotConnected, match="connect"):
        _ = connection.publish_channel


def _plain() -> aio_pika.Message:
    return aio_pika.Message(b"{}", message_id="m-1")
