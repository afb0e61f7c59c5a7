"""Notices between the processes of one gateway, on its control exchange (``{ns}.control``),
where every process has a queue of its own (exclusive: it goes with the process's
connection).

- ``topology.restored``: a process declared the broker topology again (a queue or an
  exchange was gone); every process restarts its consumers on new channels.
- ``subscriptions.changed``: a partner subscription was created, paused, resumed, marked
  gone, given a new secret or deleted; every process brings its partner workers in step
  with the store at once, not at its next sync (``GATEWAY_SUBSCRIPTION_SYNC_S``), which
  stays the fallback for a notice lost with the broker.
"""

import asyncio
from collections.abc import Callable, Mapping

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage

from gateway.queue.connection import AmqpConnection
from gateway.queue.publisher import Publisher
from gateway.queue.topology import Topology

log = structlog.get_logger("gateway.queue.notices")

TOPOLOGY_RESTORED = "topology.restored"
SUBSCRIPTIONS_CHANGED = "subscriptions.changed"


async def announce(publisher: Publisher, topology: Topology, notice: str) -> None:
    """Tell every gateway process (this one too)."""
    message = aio_pika.Message(notice.encode(), type=notice)
    await publisher.send(topology.control_exchange, notice, message)


async def announce_restored(publisher: Publisher, topology: Topology) -> None:
    await announce(publisher, topology, TOPOLOGY_RESTORED)


class Announcer:
    """Sends notices in the background: a change already stored is not failed, nor held
    up through a broker outage or alarm, for want of its notice."""

    def __init__(self, publisher: Publisher, topology: Topology) -> None:
        self._publisher = publisher
        self._topology = topology
        self._sending: set[asyncio.Task[None]] = set()

    def __call__(self, notice: str) -> None:
        task = asyncio.create_task(self._send(notice), name=f"notice:{notice}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, notice: str) -> None:
        try:
            await announce(self._publisher, self._topology, notice)
        except Exception as exc:  # noqa: BLE001 - the others catch up at their next sync
            log.warning("notice.not_sent", notice=notice, error_class=type(exc).__name__)

    async def stop(self) -> None:
        sending = list(self._sending)
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)


async def listen_for_notices(
    connection: AmqpConnection,
    topology: Topology,
    process: str,
    handlers: Mapping[str, Callable[[], None]],
) -> None:
    """Bind this process's own queue to the control exchange and call the handler of
    each notice heard (one it has none for is dropped)."""
    channel = await connection.consumer_channel(1)
    queue = await channel.declare_queue(
        f"{topology.control_exchange}.{process}", exclusive=True, auto_delete=True
    )
    await queue.bind(topology.control_exchange)

    async def heard(message: AbstractIncomingMessage) -> None:
        await message.ack()
        handler = handlers.get(message.type or "")
        if handler is not None:
            handler()

    await queue.consume(heard)
