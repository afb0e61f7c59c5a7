"""Keeps the gateway's broker topology declared, and its consumers consuming.

A queue deleted on the broker (by hand, or lost with a node) takes its bindings with it,
and the broker cancels its consumers: publishes meant for it come back unroutable, and
nothing reaches the recipient. Declaring is idempotent, so declaring the whole topology
again restores what is gone and changes nothing else. The consumers of a re-created queue
are not left to the broker client's own recovery, which registers a consumer again whose
deliveries can fail to reach the handler: they consume again on a new channel.

The keeper declares again at once when a publish of the gateway's own comes back
unroutable (an ops alert) and then restarts every consumer of this process; every
``check_s`` otherwise, restarting a consumer whose queue the broker counts none on.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import structlog

from gateway.queue.publisher import PublishFailed
from gateway.queue.topology import Topology
from gateway.wake_loop import WakeLoop

log = structlog.get_logger("gateway.queue.topology_keeper")


class Consumer(Protocol):
    @property
    def queue_name(self) -> str: ...

    @property
    def consuming(self) -> bool:
        """False while it does not mean to consume (paused by its breaker, say)."""
        ...

    async def restart(self) -> None: ...


class TopologyKeeper:
    def __init__(
        self,
        topology: Topology,
        declare: Callable[[], Awaitable[Mapping[str, int]]],
        consumers: Callable[[], Sequence[Consumer]],
        *,
        check_s: float,
    ) -> None:
        """``declare`` declares ``topology`` on the broker and answers each queue's number
        of consumers; ``consumers`` are this process's consumers of its queues."""
        self._topology = topology
        self._declare_topology = declare
        self._consumers = consumers
        self._restoring = False
        self._loop = WakeLoop(
            "topology-keeper", self._keep, poll_interval_s=check_s, on_failure=self._failed
        )

    def publish_failed(self, failure: PublishFailed) -> None:
        """Called for every failed publish: an unroutable one meant for this topology's
        queues means one of them, or its binding, is gone."""
        if failure.reason != "unroutable" or self._restoring:
            return
        if self._topology.binds(failure.exchange, failure.routing_key):
            log.warning(
                "ops_alert",
                alert="broker.topology_missing",
                exchange=failure.exchange,
                routing_key=failure.routing_key,
            )
            self._restoring = True
            self._loop.wake()

    async def _keep(self) -> None:
        restoring = self._restoring
        consumer_counts = await self._declare_topology()
        for consumer in self._consumers():
            if consumer.consuming and (restoring or consumer_counts.get(consumer.queue_name) == 0):
                log.warning("broker.consuming_again", queue=consumer.queue_name)
                await consumer.restart()
        if restoring:
            self._restoring = False
            log.info("broker.topology_declared_again", namespace=self._topology.ns)

    def _failed(self, exc: Exception, retry_in_s: float) -> None:
        log.warning(
            "broker.topology_declare_failed",
            error_class=type(exc).__name__,
            retry_in_s=retry_in_s,
        )

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
