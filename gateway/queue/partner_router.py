"""Fan-out to partner agencies, redacted per role.

    {ns}.events ──(each subscribed pattern)──> queue {ns}.partner-router
    router: for each event, every matching subscription gets the event made anew from
    the stored case with its role's profile, then
      amqp     → exchange {ns}.partner (direct), key <agency> → queue {ns}.partner.<agency>
      webhook  → exchange {ns}.deliver, key <subscription id>  → queue
                 {ns}.deliver.<subscription id>, delivered by its own DeliveryWorker

Partner queues are never bound to the events exchange: events carry the dashboard
profile only, and only the router applies a partner's own profile. The event is acked
once every copy is confirmed by the broker; a redelivered event makes the same
distribution ids again, so a partner can drop what it already has by ``webhook-id`` /
``message_id``.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
)
from pydantic import ValidationError

from contracts.case import CASE_SCHEMA, Case
from contracts.envelope import Envelope
from contracts.subscription import DeliveryMode
from gateway.errors import NotReady
from gateway.partners import Subscription, UnredactableEvent, partner_envelope, subscribers
from gateway.ports import SubscriptionStore
from gateway.queue.connection import AmqpConnection, NotConnected
from gateway.queue.delivery_worker import DeliveryWorker, RecipientEndpoint
from gateway.queue.publisher import (
    ATTEMPT,
    CASE_ID,
    SEQUENCE,
    Publisher,
    PublishFailed,
    persistent_message,
)
from gateway.queue.queue_depths import QueueDepths
from gateway.queue.topology import (
    Topology,
    declare_recipient,
    delete_recipient,
)

log = structlog.get_logger()

SUBSCRIPTION_ID = "x-subscription-id"
ROUTER_PREFETCH = 16

WorkerFactory = Callable[[RecipientEndpoint, Topology], DeliveryWorker]
CaseLookup = Callable[[str], Awaitable[Case | None]]


@dataclass(frozen=True, slots=True)
class PartnerTopology:
    """The partner side of the broker, under the same namespace as ``base``."""

    base: Topology

    @property
    def exchange(self) -> str:
        return f"{self.base.ns}.partner"

    @property
    def router_queue(self) -> str:
        return f"{self.base.ns}.partner-router"

    def partner_queue(self, agency_id: str) -> str:
        return f"{self.base.ns}.partner.{agency_id}"

    def router_queue_arguments(self) -> dict[str, Any]:
        # a poison event is dead-lettered to the parking queue after the delivery limit
        return dict(self.base.deliver_queue_spec("partner-router").arguments)

    @staticmethod
    def partner_queue_arguments() -> dict[str, Any]:
        return {"x-queue-type": "quorum"}

    def queue_of(self, subscription: Subscription) -> str:
        if subscription.mode is DeliveryMode.AMQP:
            return self.partner_queue(subscription.agency_id)
        return self.base.deliver_queue(subscription.subscription_id)


async def declare_partner_base(channel: AbstractChannel, topo: PartnerTopology) -> None:
    """The partner exchange and the router's queue (bound to patterns as subscriptions come)."""
    await channel.declare_exchange(topo.exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    await channel.declare_queue(
        topo.router_queue, durable=True, arguments=topo.router_queue_arguments()
    )


async def delete_partner_base(channel: AbstractChannel, topo: PartnerTopology) -> None:
    await channel.queue_delete(topo.router_queue)
    await channel.exchange_delete(topo.exchange)


class BrokerPartnerChannels:
    """``PartnerChannels`` on RabbitMQ: queues, router bindings and webhook workers."""

    def __init__(
        self,
        connection: AmqpConnection,
        topology: PartnerTopology,
        workers: WorkerFactory,
        router: "PartnerRouter",
        *,
        announce_restored: Callable[[], Awaitable[None]],
        clock: Callable[[], datetime],
        deliver: bool = True,
    ) -> None:
        """With ``deliver`` off (an API-only process), subscriptions get their queues and
        bindings here, and the worker processes route and deliver. ``announce_restored``
        tells every gateway process that a queue was declared again, so that each
        consumes it again (``restart_workers``)."""
        self._connection = connection
        self._announce_restored = announce_restored
        self._clock = clock
        self._deliver = deliver
        self._topology = topology
        self._make_worker = workers
        self._router = router
        self._workers: dict[str, DeliveryWorker] = {}
        # one change at a time, so a reconcile round working from a snapshot read
        # before a pause cannot restart the worker that pause has just stopped
        self._changing = asyncio.Lock()

    def queue_of(self, subscription: Subscription) -> str:
        return self._topology.queue_of(subscription)

    def worker(self, subscription_id: str) -> DeliveryWorker | None:
        return self._workers.get(subscription_id)

    async def open(self, subscription: Subscription) -> None:
        async with self._changing:
            await self._open_and_route(subscription)

    async def _open_and_route(self, subscription: Subscription) -> None:
        async with _broker_needed():
            await self._open(subscription)
            if self._deliver:
                # the router consumes once there is something to route (no partner, no queue)
                await self._router.start()

    async def _open(self, subscription: Subscription) -> None:
        topo = self._topology
        async with self._connection.connection.channel(publisher_confirms=False) as channel:
            await declare_partner_base(channel, topo)
            if subscription.mode is DeliveryMode.AMQP:
                queue = await channel.declare_queue(
                    topo.partner_queue(subscription.agency_id),
                    durable=True,
                    arguments=topo.partner_queue_arguments(),
                )
                await queue.bind(topo.exchange, routing_key=subscription.agency_id)
            else:
                await declare_recipient(
                    channel,
                    topo.base.with_recipients(subscription.subscription_id),
                    subscription.subscription_id,
                )
            router = await channel.get_queue(topo.router_queue)
            for pattern in subscription.patterns:
                await router.bind(topo.base.events_exchange, routing_key=pattern)
        if subscription.mode is DeliveryMode.WEBHOOK and subscription.active and self._deliver:
            await self._start(subscription)

    async def restore(self, subscription: Subscription) -> None:
        """The subscription's queue is gone from the broker (its publishes came back
        unroutable): declare it and its bindings again, and consume it on a new channel
        (the broker cancelled the old consumer)."""
        log.warning(
            "ops_alert",
            alert="broker.partner_queue_missing",
            subscription_id=subscription.subscription_id,
        )
        async with self._changing:
            await self._stop_worker(subscription.subscription_id)
            await self._open_and_route(subscription)
        await self._announce_restored()

    async def restart_workers(self) -> None:
        """The router and every webhook worker consume again on new channels (a queue
        was declared again, and a consumer of a queue that was gone may be deaf)."""
        # not under ``_changing``: the router may be waiting for it (``restore``)
        await self._router.restart()
        async with self._changing:
            for worker in self._workers.values():
                if worker.consuming:
                    await worker.restart()

    async def pause(self, subscription: Subscription) -> None:
        async with self._changing:
            await self._stop_worker(subscription.subscription_id)

    async def _stop_worker(self, subscription_id: str) -> None:
        worker = self._workers.pop(subscription_id, None)
        if worker is not None:
            await worker.stop()

    async def resume(self, subscription: Subscription) -> None:
        if subscription.mode is DeliveryMode.WEBHOOK and self._deliver:
            async with self._changing, _broker_needed():
                await self._start(subscription)

    async def rekey(self, subscription: Subscription) -> None:
        async with self._changing:
            self._sign(subscription)

    def _sign(self, subscription: Subscription) -> None:
        worker = self._workers.get(subscription.subscription_id)
        secrets = subscription.signing_secrets(self._clock())
        if worker is not None and worker.secrets != secrets:
            worker.sign_with(secrets)

    async def close(
        self, subscription: Subscription, remaining: Sequence[Subscription] = ()
    ) -> None:
        topo = self._topology
        still_used = {p for s in remaining for p in s.patterns}
        async with (
            self._changing,
            _broker_needed(),
            self._connection.connection.channel(publisher_confirms=False) as channel,
        ):
            await self._stop_worker(subscription.subscription_id)
            router = await channel.get_queue(topo.router_queue)
            for pattern in set(subscription.patterns) - still_used:
                await router.unbind(topo.base.events_exchange, routing_key=pattern)
            if subscription.mode is DeliveryMode.AMQP:
                await channel.queue_delete(topo.partner_queue(subscription.agency_id))
            else:
                await delete_recipient(channel, topo.base, subscription.subscription_id)

    async def reconcile(self, load: Callable[[], Awaitable[Sequence[Subscription]]]) -> None:
        """Bring this process's webhook workers in step with the store, where another
        gateway process may have added, paused, resumed, deleted or given a new secret
        (and a previous secret's overlap may have ended), and declare the router's queue
        again if it is gone from the broker."""
        async with self._changing:
            stored = await load()
            wanted = {
                s.subscription_id: s for s in stored if s.mode is DeliveryMode.WEBHOOK and s.active
            }
            for subscription_id in [sid for sid in self._workers if sid not in wanted]:
                await self._stop_worker(subscription_id)
            for subscription_id, subscription in wanted.items():
                if subscription_id not in self._workers:
                    await self._open_and_route(subscription)
                else:
                    self._sign(subscription)
        if self._deliver and stored and await self._router_queue_redeclared(stored):
            await self._router.restart()
            await self._announce_restored()

    async def _router_queue_redeclared(self, subscriptions: Sequence[Subscription]) -> bool:
        """Declare the router's queue and every subscription's bindings to it again if the
        queue is gone from the broker (deleted by hand, lost with a node); answers whether
        it was gone. Events published meanwhile reached no partner."""
        topo = self._topology
        if topo.router_queue in await QueueDepths(self._connection).depths([topo.router_queue]):
            return False
        log.warning("ops_alert", alert="broker.partner_router_queue_missing")
        async with self._connection.connection.channel(publisher_confirms=False) as channel:
            await declare_partner_base(channel, topo)
            router = await channel.get_queue(topo.router_queue)
            for pattern in sorted({p for s in subscriptions for p in s.patterns}):
                await router.bind(topo.base.events_exchange, routing_key=pattern)
        return True

    async def stop(self) -> None:
        await self._router.stop()
        workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            await worker.stop()

    async def _start(self, subscription: Subscription) -> None:
        if subscription.subscription_id in self._workers:
            return
        if subscription.url is None or subscription.secret is None:
            raise ValueError("a webhook subscription without URL or secret")
        endpoint = RecipientEndpoint(
            recipient_id=subscription.subscription_id,
            url=subscription.url,
            secrets=subscription.signing_secrets(self._clock()),
        )
        worker = self._make_worker(
            endpoint, self._topology.base.with_recipients(subscription.subscription_id)
        )
        await worker.start()
        self._workers[subscription.subscription_id] = worker


class PartnerRouter:
    """Consumes the router queue; one event at a time, so each partner gets a case's
    events in the order they were published."""

    def __init__(
        self,
        connection: AmqpConnection,
        publisher: Publisher,
        topology: PartnerTopology,
        subscriptions: SubscriptionStore,
        get_case: CaseLookup,
        *,
        prefetch: int = ROUTER_PREFETCH,
    ) -> None:
        self._connection = connection
        self._publisher = publisher
        self._topology = topology
        self._subscriptions = subscriptions
        self._get_case = get_case
        self._prefetch = prefetch
        self._one_at_a_time = asyncio.Lock()
        self._consumer: tuple[AbstractRobustChannel, AbstractQueue, str] | None = None
        self._restore: Callable[[Subscription], Awaitable[None]] | None = None

    def when_queue_missing(self, restore: Callable[[Subscription], Awaitable[None]]) -> None:
        """``restore`` declares a subscription's queue again when its publish comes back
        unroutable while the subscription still exists; the publish is then tried again."""
        self._restore = restore

    async def start(self) -> None:
        if self._consumer is not None:
            return
        channel = await self._connection.consumer_channel(self._prefetch)
        await declare_partner_base(channel, self._topology)
        queue = await channel.get_queue(self._topology.router_queue)
        tag = await queue.consume(self.handle)
        self._consumer = (channel, queue, tag)

    async def restart(self) -> None:
        """Consume again on a new channel, if consuming."""
        if self._consumer is None:
            return
        await self.stop()
        await self.start()

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        channel, queue, tag = consumer
        with contextlib.suppress(Exception):
            await queue.cancel(tag)
        async with self._one_at_a_time:
            with contextlib.suppress(Exception):
                await channel.close()

    async def handle(self, message: AbstractIncomingMessage) -> None:
        async with self._one_at_a_time:
            try:
                event = Envelope.model_validate_json(message.body)
            except ValidationError:
                # e.g. delivery.* events, which are not envelopes: nothing to redact them
                # with, so no partner gets them
                log.warning(
                    "partner_router.not_an_envelope",
                    distribution_id=message.message_id,
                    routing_key=message.routing_key,
                )
                await message.ack()
                return
            try:
                await self._route(event, message.routing_key or "")
            except Exception as exc:  # noqa: BLE001 — the delivery limit settles a poison event
                log.error(
                    "partner_router.failed",
                    distribution_id=event.distribution_id,
                    case_id=event.case_id,
                    error_class=exc.reason
                    if isinstance(exc, PublishFailed)
                    else type(exc).__name__,
                )
                with contextlib.suppress(Exception):
                    await message.nack(requeue=True)
                return
            await message.ack()

    async def _route(self, event: Envelope, routing_key: str) -> None:
        matched = subscribers(await self._subscriptions.subscriptions(), routing_key)
        if not matched:
            return
        case: Case | None = None
        if event.schema_ == CASE_SCHEMA:
            case = await self._get_case(event.case_id)
        for subscription in matched:
            try:
                envelope = partner_envelope(event, routing_key, case, subscription)
            except UnredactableEvent:
                log.error(
                    "partner_router.unredactable",
                    distribution_id=event.distribution_id,
                    subscription_id=subscription.subscription_id,
                )
                continue
            await self._send(subscription, envelope)

    async def _send(self, subscription: Subscription, envelope: Envelope) -> None:
        topo = self._topology
        if subscription.mode is DeliveryMode.AMQP:
            exchange, key = topo.exchange, subscription.agency_id
        else:
            exchange, key = topo.base.deliver_exchange, subscription.subscription_id
        body = envelope.model_dump_json(by_alias=True, exclude_none=True).encode()
        headers = {
            CASE_ID: envelope.case_id,
            SEQUENCE: envelope.sequence,
            ATTEMPT: 1,
            SUBSCRIPTION_ID: subscription.subscription_id,
        }
        try:
            await self._publisher.send(
                exchange, key, persistent_message(body, envelope.distribution_id, headers)
            )
        except PublishFailed as exc:
            if exc.reason != "unroutable":
                raise
            if await self._subscriptions.subscription(subscription.subscription_id) is None:
                return  # deleted while the event was on its way
            if self._restore is None:
                raise
            await self._restore(subscription)
            await self._publisher.send(
                exchange, key, persistent_message(body, envelope.distribution_id, headers)
            )
        log.info(
            "partner_router.routed",
            distribution_id=envelope.distribution_id,
            case_id=envelope.case_id,
            subscription_id=subscription.subscription_id,
            redaction_profile=envelope.redaction_profile.value,
        )


def _error_class(exc: Exception) -> str:
    return exc.reason if isinstance(exc, PublishFailed) else type(exc).__name__


@contextlib.asynccontextmanager
async def _broker_needed() -> AsyncIterator[None]:
    """Broker failures while changing a subscription come out as ``NotReady`` (503)."""
    try:
        yield
    except (
        NotConnected,
        aiormq.exceptions.AMQPError,
        aiormq.exceptions.ChannelInvalidStateError,
        ConnectionError,
    ) as exc:
        raise NotReady(f"the broker is not reachable ({type(exc).__name__})") from exc
