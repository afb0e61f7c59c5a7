"""Publishing with publisher confirms: a message counts as sent once the broker confirms it.

Every way a publish can fail — returned as unroutable, nacked, no confirm in time,
connection or channel gone — comes out as one ``PublishFailed``.
"""

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractMessage, DeliveryMode

from gateway.errors import GatewayError
from gateway.model import Destination, OutboundMessage
from gateway.queue.connection import AmqpConnection
from gateway.queue.topology import Topology

DEFAULT_CONFIRM_TIMEOUT_S = 5.0

CASE_ID = "x-case-id"
SEQUENCE = "x-sequence"
DEADLINE_AT = "x-deadline-at"
ATTEMPT = "x-attempt"


class PublishFailed(GatewayError):
    """The broker did not confirm a message. ``reason`` is an S0 label:
    ``unroutable``, ``exchange_missing`` (the broker closed the channel: no such
    exchange), ``nacked``, ``confirm_timeout`` or ``connection``."""

    def __init__(self, reason: str, exchange: str, routing_key: str) -> None:
        super().__init__(f"{reason}: {exchange} {routing_key}")
        self.reason = reason
        self.exchange = exchange
        self.routing_key = routing_key


class Publisher:
    def __init__(
        self,
        connection: AmqpConnection,
        topology: Topology,
        *,
        confirm_timeout_s: float = DEFAULT_CONFIRM_TIMEOUT_S,
        on_failure: Callable[[PublishFailed], None] | None = None,
    ) -> None:
        """``on_failure`` hears of every failed publish before it is raised."""
        self._connection = connection
        self._topology = topology
        self._confirm_timeout_s = confirm_timeout_s
        self._on_failure = on_failure
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}

    async def publish(self, message: OutboundMessage) -> None:
        """Send one outbox message where its destination says; raises ``PublishFailed``.

        ``NotConnected`` is not translated: publishing before connecting is a wiring bug.
        """
        headers: dict[str, Any] = {
            CASE_ID: message.case_id,
            SEQUENCE: message.sequence,
            ATTEMPT: 1,
        }
        if message.deadline_at is not None:
            headers[DEADLINE_AT] = message.deadline_at.isoformat()
        amqp_message = persistent_message(message.body, message.message_id, headers)
        match message.destination:
            case Destination.EVENTS:
                exchange = self._topology.events_exchange
            case Destination.DELIVER:
                exchange = self._topology.deliver_exchange
        await self.send(exchange, message.routing_key, amqp_message)

    async def send(self, exchange: str, routing_key: str, message: AbstractMessage) -> None:
        """Publish ``mandatory`` and wait for the confirm; raises ``PublishFailed``."""
        try:
            await self._send(exchange, routing_key, message)
        except PublishFailed as failure:
            if self._on_failure is not None:
                self._on_failure(failure)
            raise

    async def _send(self, exchange: str, routing_key: str, message: AbstractMessage) -> None:
        try:
            async with asyncio.timeout(self._confirm_timeout_s):
                target = await self._exchange(exchange)
                await target.publish(message, routing_key, mandatory=True)
        except aiormq.exceptions.PublishError as exc:
            raise PublishFailed("unroutable", exchange, routing_key) from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise PublishFailed("nacked", exchange, routing_key) from exc
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            # the broker closes the channel for every publish in flight on it: only the
            # one it names went to the missing exchange
            named = f"no exchange '{exchange}'" in str(exc)
            reason = "exchange_missing" if named else "connection"
            raise PublishFailed(reason, exchange, routing_key) from exc
        except TimeoutError as exc:
            raise PublishFailed("confirm_timeout", exchange, routing_key) from exc
        except (
            aiormq.exceptions.AMQPError,
            aiormq.exceptions.ChannelInvalidStateError,
            ConnectionError,
        ) as exc:
            raise PublishFailed("connection", exchange, routing_key) from exc

    async def _exchange(self, name: str) -> AbstractExchange:
        channel = self._connection.publish_channel
        if channel is not self._channel:
            self._channel, self._exchanges = channel, {}
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = await channel.get_exchange(name, ensure=False)
            self._exchanges[name] = exchange
        return exchange


def persistent_message(
    body: bytes, message_id: str, headers: Mapping[str, Any]
) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=message_id,
        content_type="application/json",
        headers=dict(headers),
    )
