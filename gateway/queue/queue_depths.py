"""How many messages wait in each queue, read from the broker (for ops and metrics).

A passive declare answers a queue's ready messages without changing it. Asking for a
queue that does not exist (a subscription deleted meanwhile) makes the broker close
the channel: that queue is left out and the rest asked on a fresh channel.
"""

from collections.abc import Sequence

import aiormq

from gateway.queue.connection import AmqpConnection


class QueueDepths:
    def __init__(self, connection: AmqpConnection) -> None:
        self._connection = connection

    async def depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Ready messages of each queue that exists; raises ``NotConnected`` or an AMQP
        error when the broker cannot be asked."""
        found: dict[str, int] = {}
        pending = list(dict.fromkeys(queues))
        while pending:
            async with self._connection.connection.channel(publisher_confirms=False) as channel:
                while pending:
                    name = pending.pop(0)
                    try:
                        queue = await channel.declare_queue(name, passive=True)
                    except aiormq.exceptions.ChannelNotFoundEntity:
                        break
                    result = queue.declaration_result
                    found[name] = int(result.message_count or 0)
        return found
