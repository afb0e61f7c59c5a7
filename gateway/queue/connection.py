"""The broker connections: one that publishes, with its publisher-confirm channel, and
one for everything else (consumers, declarations, checks).

A broker short of memory or disk blocks every connection that publishes: it stops
reading from it, acknowledgements and declarations included. Sharing one connection, a
process would stop delivering messages already queued (no ack gets through, so no
delivery past the prefetch) and declaring its topology for as long as the alarm lasts;
apart, only publishing waits, and the outbox keeps what waits for it.

Before ``connect()`` and after ``close()`` the connections are in a disconnected state
that raises ``NotConnected`` on use, so callers never check for ``None``.
"""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

from gateway.queue.topology import Topology, declare


class NotConnected(RuntimeError):
    """The broker connection was used before ``connect()`` or after ``close()``."""


class _Disconnected:
    def __init__(self, why: str) -> None:
        self._why = why

    @property
    def connection(self) -> AbstractRobustConnection:
        raise NotConnected(self._why)

    @property
    def publish_channel(self) -> AbstractRobustChannel:
        raise NotConnected(self._why)


@dataclass(frozen=True, slots=True)
class _Connected:
    connection: AbstractRobustConnection
    publishing: AbstractRobustConnection
    publish_channel: AbstractRobustChannel

    @property
    def is_up(self) -> bool:
        return self.connection.connected.is_set() and self.publishing.connected.is_set()


class AmqpConnection:
    """``connect_robust`` reconnects each by itself after the broker restarts; channels and
    consumers opened through them are restored too. The broker sees them as
    ``{name}/consume`` and ``{name}/publish``."""

    def __init__(self, url: str, *, name: str = "gateway", timeout_s: float = 10.0) -> None:
        self._url = url
        self._name = name
        self._timeout_s = timeout_s
        self._state: _Disconnected | _Connected = _Disconnected(
            "the AMQP connection is not open yet: call connect() first"
        )

    @property
    def is_connected(self) -> bool:
        return isinstance(self._state, _Connected)

    @property
    def is_up(self) -> bool:
        """Both connections open now (robust ones reconnect by themselves meanwhile)."""
        return isinstance(self._state, _Connected) and self._state.is_up

    @property
    def connection(self) -> AbstractRobustConnection:
        """The connection that never publishes: consumers, declarations, checks."""
        return self._state.connection

    @property
    def publish_channel(self) -> AbstractRobustChannel:
        """The channel with publisher confirms on; unroutable mandatory messages raise."""
        return self._state.publish_channel

    async def connect(self) -> None:
        if self.is_connected:
            return
        async with AsyncExitStack() as opened:
            connection = await self._open("consume")
            opened.push_async_callback(connection.close)
            publishing = await self._open("publish")
            opened.push_async_callback(publishing.close)
            channel = await publishing.channel(publisher_confirms=True, on_return_raises=True)
            opened.pop_all()
        self._state = _Connected(connection, publishing, channel)

    async def _open(self, role: str) -> AbstractRobustConnection:
        return await aio_pika.connect_robust(
            self._url,
            timeout=self._timeout_s,
            client_properties={"connection_name": f"{self._name}/{role}"},
        )

    async def consumer_channel(self, prefetch: int) -> AbstractRobustChannel:
        """A new channel for one consumer, with at most ``prefetch`` unacked deliveries."""
        channel = await self.connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def declare(self, topology: Topology) -> dict[str, int]:
        """Declare the topology on a short-lived channel of its own; answers each queue's
        number of consumers."""
        async with self.connection.channel(publisher_confirms=False) as channel:
            return await declare(channel, topology)

    async def close(self) -> None:
        state = self._state
        self._state = _Disconnected("the AMQP connection is closed")
        if isinstance(state, _Connected):
            try:
                await state.publishing.close()
            finally:
                await state.connection.close()


@asynccontextmanager
async def connected(connection: AmqpConnection) -> AsyncIterator[AmqpConnection]:
    """Open for the duration of the block (suits aiohttp's ``cleanup_ctx``)."""
    await connection.connect()
    try:
        yield connection
    finally:
        await connection.close()
