"""Keeps the gateway's broker topology declared, and its consumers consuming.

A queue deleted on the broker (by hand, or lost with a node) takes its bindings with it,
and the broker cancels its consumers: publishes meant for it come back unroutable, and
nothing reaches the recipient. Declaring is idempotent, so declaring the whole topology
again restores what is gone and changes nothing else. The consumers of a re-created queue
are not left to the broker client's own recovery, which registers a consumer again whose
deliveries can fail to reach the handler: they consume again on a new channel.

The keeper declares again at once when a publish of the gateway's own comes back
unroutable (an ops alert), then tells every gateway process through the control exchange
(``gateway.queue.notices``), and each restarts its consumers; every ``check_s``
otherwise, it declares and restarts a consumer whose queue the broker counts none on.
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
    def queue_name(self) -> str | None:
        """None when its queues are not the topology's: only a notice restarts it."""
        ...

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
        announce: Callable[[], Awaitable[None]],
        *,
        check_s: float,
    ) -> None:
        """``declare`` declares ``topology`` on the broker and answers each queue's number
        of consumers; ``consumers`` are this process's consumers of its queues;
        ``announce`` tells every gateway process (this one too) that the topology was
        restored, each calling its keeper's ``restored``."""
        self._topology = topology
        self._declare_topology = declare
        self._consumers = consumers
        self._announce = announce
        self._restoring = False
        self._restart_all = False
        self._loop = WakeLoop(
            "topology-keeper", self._keep, poll_interval_s=check_s, on_failure=self._failed
        )

    def publish_failed(self, failure: PublishFailed) -> None:
        """Called for every failed publish: an unroutable one meant for this topology's
        queues means one of them, or its binding, is gone; one to an exchange of this
        topology that the broker does not know means that exchange is gone."""
        if self._restoring:
            return
        topology = self._topology
        queue_gone = failure.reason == "unroutable" and topology.binds(
            failure.exchange, failure.routing_key
        )
        exchange_gone = failure.reason == "exchange_missing" and topology.declares_exchange(
            failure.exchange
        )
        if queue_gone or exchange_gone:
            log.warning(
                "ops_alert",
                alert="broker.topology_missing",
                exchange=failure.exchange,
                routing_key=failure.routing_key,
            )
            self._restoring = True
            self._loop.wake()

    def restored(self) -> None:
        """Some gateway process declared the topology again: consume again, as a consumer
        of a queue that was gone may be deaf."""
        self._restart_all = True
        self._loop.wake()

    async def _keep(self) -> None:
        restoring = self._restoring
        consumer_counts = await self._declare_topology()
        if restoring:
            await self._announce()
            self._restoring = False
            log.info("broker.topology_declared_again", namespace=self._topology.ns)
        restart_all, self._restart_all = self._restart_all, False
        for consumer in self._consumers():
            name = consumer.queue_name
            lost = name is not None and consumer_counts.get(name) == 0
            if consumer.consuming and (restart_all or lost):
                log.warning("broker.consuming_again", queue=name)
                await consumer.restart()

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
