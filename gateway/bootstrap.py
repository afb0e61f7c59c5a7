"""The composition root: settings in, a wired application out. Nothing connects at import."""

import asyncio
import base64
import contextlib
import gc
import os
import secrets
import signal
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import uuid4

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from ulid import ULID

from contracts.envelope import DistributionStatus
from contracts.ops import RecipientKind
from contracts.subscription import DeliveryMode
from gateway import audit, escalation, retention, signing
from gateway.access import ApiRole
from gateway.adapters.api import PROBE_ROUTES, ROUTES, add_routes, roles_of_route
from gateway.adapters.auth import TokenTable, auth_middleware
from gateway.adapters.http_api import CONTEXT, HttpContext
from gateway.adapters.http_cases import CASES
from gateway.adapters.http_delivery import DELIVERY, DeliveryContext
from gateway.adapters.http_subscriptions import SUBSCRIPTIONS
from gateway.adapters.metrics import GatewayMetrics, GaugeSources, OutboxLag
from gateway.adapters.ops_console import OPS, OpsContext, end_streams
from gateway.adapters.problems import problem_middleware
from gateway.adapters.push_client import HttpPusher
from gateway.adapters.rate_limit import TokenBuckets, rate_limit_middleware
from gateway.adapters.sealing import Sealer
from gateway.adapters.simulator_112 import run_simulator
from gateway.adapters.slot import Slot
from gateway.adapters.store import SqlStore
from gateway.adapters.store.reseal import SealedValues
from gateway.alert_digest import AlertDigest
from gateway.case_messages import Sending, sla_event_messages
from gateway.cases import CaseService
from gateway.circuit_breaker import BreakerState, CircuitBreaker
from gateway.errors import NotReady
from gateway.intake import IntakeService
from gateway.logs import configure_logging
from gateway.model import ParkedMessage, ParkedSelector, RecipientLive, Timer, TimerEffects
from gateway.queue.connection import AmqpConnection
from gateway.queue.delivery_worker import DeliveryWorker, QuickRetry, RecipientEndpoint
from gateway.queue.notices import (
    SUBSCRIPTIONS_CHANGED,
    TOPOLOGY_RESTORED,
    Announcer,
    announce_restored,
    listen_for_notices,
)
from gateway.queue.parking import ParkingRecorder, Replayer
from gateway.queue.partner_router import BrokerPartnerChannels, PartnerRouter, PartnerTopology
from gateway.queue.publisher import Publisher
from gateway.queue.queue_depths import QueueDepths
from gateway.queue.relay import OutboxRelay
from gateway.queue.topology import Topology, build_topology
from gateway.queue.topology_keeper import Consumer, TopologyKeeper
from gateway.routing import C112_RECIPIENT
from gateway.settings import Settings
from gateway.subscriptions import SubscriptionService
from gateway.timer_service import TimerHandler, TimerService
from gateway.wake_loop import WakeLoop
from gateway.workflow import SLA_BREACHED, SLA_WARNING, next_window_timers

log = structlog.get_logger(__name__)

BROKER_RETRY_FIRST_S = 0.5
BROKER_RETRY_MAX_S = 10.0
# What a subscription's worker awaits after its partner answered 410 Gone.
OnGone = Callable[[], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_case_id() -> str:
    return f"urn:tangerangkota:kdrt:{ULID()}"


def new_distribution_id() -> str:
    return str(uuid4())


def recipient_endpoints(settings: Settings) -> list[RecipientEndpoint]:
    endpoints = []
    if settings.c112_url and settings.c112_secret:
        secrets = tuple(signing.split_secrets(settings.c112_secret.get_secret_value()))
        endpoints.append(RecipientEndpoint(C112_RECIPIENT, settings.c112_url, secrets))
        if settings.c112_failover_url:
            failover = escalation.failover_recipient(C112_RECIPIENT)
            endpoints.append(RecipientEndpoint(failover, settings.c112_failover_url, secrets))
    return endpoints


def topology(settings: Settings) -> Topology:
    recipients = [C112_RECIPIENT]
    if settings.c112_failover_url:
        recipients.append(escalation.failover_recipient(C112_RECIPIENT))
    return build_topology(
        settings.namespace,
        recipients=recipients,
        ladder=tuple(settings.retry_delays_s),
        delivery_limit=settings.delivery_limit,
    )


def check_secrets(settings: Settings) -> None:
    """Refuse to start with a malformed ``whsec_`` secret or without data keys rather
    than fail on first use."""
    for name in ("inbound_secret", "c112_secret"):
        value = getattr(settings, name)
        if value is None:
            continue
        for secret in signing.split_secrets(value.get_secret_value()):
            try:
                signing.secret_key(secret)
            except ValueError as exc:
                raise ValueError(f"GATEWAY_{name.upper()}: {exc}") from None
    sealer(settings)


async def open_store(settings: Settings) -> SqlStore:
    return await SqlStore.connect(settings.database_url.get_secret_value(), sealer=sealer(settings))


def sealer(settings: Settings) -> Sealer:
    """What seals personal data in the store, from ``GATEWAY_DATA_KEYS`` (required)."""
    if settings.data_keys is None:
        raise ValueError(
            "GATEWAY_DATA_KEYS is not set: personal data is stored sealed "
            "(make a key with `gateway new-secret --data-key`)"
        )
    try:
        return Sealer.from_setting(settings.data_keys.get_secret_value())
    except ValueError as exc:
        raise ValueError(f"GATEWAY_DATA_KEYS: {exc}") from None


class ProcessRole(StrEnum):
    """What one ``gateway serve`` process does; any number of each share the broker and
    the store. Every role runs the outbox relay and the timer service (both exactly-once
    across processes)."""

    ALL = "all"
    API = "api"  # the HTTP API; no delivery
    WORKER = "worker"  # delivery to 112 and partners, parking; HTTP probes and metrics only

    @property
    def serves_api(self) -> bool:
        return self is not ProcessRole.WORKER

    @property
    def delivers(self) -> bool:
        return self is not ProcessRole.API


@dataclass
class Runtime:
    """The running parts, for tests and the CLI to reach; filled in at startup."""

    settings: Settings
    role: ProcessRole = ProcessRole.ALL
    clock: Callable[[], datetime] = utc_now
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    workers: list[DeliveryWorker] = field(default_factory=list)
    parking: ParkingRecorder | None = None
    partners: "Partners | None" = None
    broker_up: asyncio.Event = field(default_factory=asyncio.Event)

    def consumers(self) -> list[Consumer]:
        """What consumes the broker's queues in this process, for the topology keeper."""
        found: list[Consumer] = [*self.workers]
        if self.parking is not None:
            found.append(self.parking)
        if self.partners is not None:
            found.append(self.partners)
        return found


RUNTIME = web.AppKey("runtime", Runtime)


async def _broker_check(amqp: AmqpConnection, runtime: Runtime) -> None:
    if not runtime.broker_up.is_set():
        raise NotReady("the broker topology is not declared yet")
    if not amqp.is_up:
        raise NotReady("the broker connection is down")


def _notice_handlers(runtime: Runtime, keeper: TopologyKeeper) -> dict[str, Callable[[], None]]:
    handlers = {TOPOLOGY_RESTORED: keeper.restored}
    if runtime.partners is not None:
        handlers[SUBSCRIPTIONS_CHANGED] = runtime.partners.sync_now
    return handlers


async def _bring_up_broker(
    amqp: AmqpConnection, topo: Topology, runtime: Runtime, keeper: TopologyKeeper
) -> None:
    """Connect, declare, start consuming, then keep the topology declared; keep trying
    while the broker is away.

    Intake does not wait for this: accepted reports wait in the outbox meanwhile.
    """
    delay = BROKER_RETRY_FIRST_S
    while True:
        try:
            await amqp.connect()
            await amqp.declare(topo)
            await listen_for_notices(amqp, topo, process_id(), _notice_handlers(runtime, keeper))
            for worker in runtime.workers:
                await worker.start()
            if runtime.parking is not None:
                await runtime.parking.start()
            if runtime.partners is not None:
                await runtime.partners.start()
        except Exception as exc:  # noqa: BLE001 - any failure here means "try again later"
            log.warning("broker.unavailable", error_class=type(exc).__name__, retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BROKER_RETRY_MAX_S)
            continue
        runtime.broker_up.set()
        log.info("broker.ready", namespace=topo.ns)
        keeper.start()
        return


def sending(settings: Settings) -> Sending:
    return Sending(
        sender_id=settings.sender_id,
        status=DistributionStatus(settings.distribution_status),
        new_id=new_distribution_id,
    )


def timer_handlers(settings: Settings, clock: Callable[[], datetime]) -> dict[str, TimerHandler]:
    """The pure handler of each timer kind; a new kind is one more entry here."""
    who = sending(settings)

    def sla_event(timer: Timer) -> TimerEffects:
        return TimerEffects(outgoing=sla_event_messages(timer, now=clock(), sending=who))

    def sla_breach(timer: Timer) -> TimerEffects:
        return TimerEffects(
            outgoing=sla_event_messages(timer, now=clock(), sending=who),
            timers=next_window_timers(timer, who.new_id),
        )

    return {
        SLA_WARNING: sla_event,
        SLA_BREACHED: sla_breach,
        **escalation.handlers(failover=failover_on(settings), clock=clock),
    }


def failover_on(settings: Settings) -> bool:
    return bool(settings.c112_url and settings.c112_failover_url)


ALERT_SUMMARY_WINDOW = timedelta(minutes=1)


def escalation_alerts(
    settings: Settings,
    clock: Callable[[], datetime],
    window: timedelta = ALERT_SUMMARY_WINDOW,
) -> Callable[[Sequence[Timer]], None]:
    """The timer service's ``on_round``: an ``ops_alert`` per escalation fired (after
    its commit), and at most one ``ops_alert.summary`` per kind and recipient a window."""
    failover = failover_on(settings)
    digest = AlertDigest(window)

    def after_round(fired: Sequence[Timer]) -> None:
        now = clock()
        for timer in fired:
            if timer.kind not in escalation.KINDS:
                continue
            recipient = timer.data.get("recipient", "")
            log.warning(
                "ops_alert",
                alert=timer.kind,
                distribution_id=timer.subject,
                case_id=timer.case_id,
                recipient=recipient,
                failover=failover and timer.kind == escalation.AT_RISK,
            )
            digest.add(timer.kind, recipient, now)
        for summary in digest.due(now):
            log.warning(
                "ops_alert.summary",
                alert=summary.alert,
                recipient=summary.recipient,
                count=summary.count,
                first_at=summary.first_at.isoformat(),
                last_at=summary.last_at.isoformat(),
                window_s=window.total_seconds(),
            )

    return after_round


def _log_timer_error(event: str, fields: Mapping[str, object]) -> None:
    log.error(event, **fields)


def sla_scale_note(settings: Settings) -> str | None:
    if settings.sla_scale == 1:
        return None
    return (
        f"GATEWAY_SLA_SCALE={settings.sla_scale:g}: every SOP 357 time standard is divided "
        f"by {settings.sla_scale:g} (drills and tests only)"
    )


async def _runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    settings = runtime.settings
    check_secrets(settings)
    store = await open_store(settings)
    amqp = AmqpConnection(
        settings.amqp_url.get_secret_value(), name=f"gateway-{settings.namespace}"
    )
    topo = topology(settings)
    keeper = TopologyKeeper(
        topo,
        lambda: amqp.declare(topo),
        runtime.consumers,
        lambda: announce_restored(publisher, topo),
        check_s=settings.topology_check_s,
    )
    publisher = Publisher(amqp, topo, on_failure=keeper.publish_failed)
    relay = OutboxRelay(
        store,
        publisher,
        claimant=process_id(),
        poll_interval_s=settings.relay_poll_s,
        clock=runtime.clock,
    )
    metrics = app[METRICS]
    for recipient in topo.recipients:
        metrics.watch(recipient)
    alerts = escalation_alerts(settings, runtime.clock)

    def after_round(fired: Sequence[Timer]) -> None:
        alerts(fired)
        metrics.timers_fired(fired)

    timers = TimerService(
        store,
        clock=runtime.clock,
        handlers=timer_handlers(settings, runtime.clock),
        poll_interval_s=settings.sla_timer_poll_s,
        on_fired=relay.wake,
        on_round=after_round,
        on_error=_log_timer_error,
    )
    note = sla_scale_note(settings)
    if note is None:
        log.info("sla.scale", scale=settings.sla_scale)
    else:
        log.warning("sla.scale_not_one", scale=settings.sla_scale, note=note)
    session = aiohttp.ClientSession()
    pusher = HttpPusher(session, timeout_s=settings.push_timeout_s)

    def make_worker(
        endpoint: RecipientEndpoint, worker_topo: Topology, on_gone: OnGone | None = None
    ) -> DeliveryWorker:
        metrics.watch(endpoint.recipient_id)
        return DeliveryWorker(
            amqp,
            publisher,
            worker_topo,
            endpoint,
            pusher,
            store,
            clock=runtime.clock,
            prefetch=settings.prefetch,
            quick_retry=QuickRetry(attempts=settings.push_attempts),
            breaker=CircuitBreaker(
                settings.breaker_threshold,
                settings.breaker_cool_down_s,
                first_cool_down_s=settings.breaker_first_cool_down_s,
            ),
            concurrency=settings.delivery_concurrency,
            observer=metrics,
            on_gone=on_gone,
        )

    if runtime.role.delivers:
        runtime.workers = [
            make_worker(endpoint, topo) for endpoint in recipient_endpoints(settings)
        ]
        runtime.parking = ParkingRecorder(amqp, publisher, topo, store, clock=runtime.clock)
    runtime.partners = partners(settings, runtime, amqp, publisher, topo, store, make_worker)
    app[SUBSCRIPTIONS].bind(runtime.partners.service)
    replayer = Replayer(publisher, topo, store, clock=runtime.clock)
    c112_secret = settings.c112_secret.get_secret_value() if settings.c112_secret else ""
    app[DELIVERY].bind(
        store=store,
        replay=lambda selector, by: replayer.replay(selector, by=by),
        c112_secrets=tuple(signing.split_secrets(c112_secret)),
    )
    inbound = settings.inbound_secret.get_secret_value() if settings.inbound_secret else ""
    app[CONTEXT].bind(
        intake=IntakeService(
            store=store,
            clock=runtime.clock,
            new_case_id=new_case_id,
            new_distribution_id=new_distribution_id,
            on_committed=relay.hand,
            sender_id=settings.sender_id,
            status=DistributionStatus(settings.distribution_status),
            sla_scale=settings.sla_scale,
            outbox_claim=relay.new_claim,
        ),
        inbound_secrets=tuple(signing.split_secrets(inbound)),
        readiness_checks={"store": store.ping, "broker": lambda: _broker_check(amqp, runtime)},
    )

    def committed() -> None:
        relay.wake()
        timers.wake()

    app[CASES].bind(
        CaseService(
            store=store,
            clock=runtime.clock,
            scale=settings.sla_scale,
            sending=sending(settings),
            on_committed=committed,
        )
    )
    bind_ops_console(app, store, amqp, topo)
    relay.start()
    timers.start()
    purge = retention_purge(settings, store, runtime.clock) if runtime.role.delivers else None
    if purge is not None:
        purge.start()
    broker = asyncio.create_task(
        _bring_up_broker(amqp, topo, runtime, keeper), name="broker-bring-up"
    )
    try:
        yield
    finally:
        broker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await broker
        await keeper.stop()
        for worker in runtime.workers:
            await worker.stop()
        if runtime.parking is not None:
            await runtime.parking.stop()
        if runtime.partners is not None:
            await runtime.partners.stop()
        if purge is not None:
            await purge.stop()
        await timers.stop()
        await relay.stop()
        await session.close()
        await amqp.close()
        await store.close()


# ---- Partner subscriptions (issue 5) ----


def process_id() -> str:
    """This gateway process among the others sharing the store and the broker."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def new_subscription_id() -> str:
    """A routing-key word: it names the subscription's delivery queue."""
    return f"sub-{str(ULID()).lower()}"


def new_webhook_secret() -> str:
    return signing.SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Partners:
    """Subscriptions, their queues and workers, and the router that feeds them."""

    service: SubscriptionService
    channels: BrokerPartnerChannels
    announcer: Announcer
    sync_s: float
    deliver: bool = True
    _in_step: WakeLoop | None = None

    async def start(self) -> None:
        """Declare and start every stored subscription (the router starts with the first),
        then keep the workers in step with the store: every ``sync_s``, and at once when
        a process announces a change."""
        await self.service.restore()
        if self.deliver and self._in_step is None:
            self._in_step = WakeLoop(
                "subscriptions-sync",
                lambda: self.channels.reconcile(self.service.list),
                poll_interval_s=self.sync_s,
                on_failure=_sync_failed,
            )
            self._in_step.start()

    def sync_now(self) -> None:
        if self._in_step is not None:
            self._in_step.wake()

    # the topology keeper's view of the subscriptions' webhook workers, as one consumer
    queue_name = None

    @property
    def consuming(self) -> bool:
        return self.deliver

    async def restart(self) -> None:
        await self.channels.restart_workers()

    async def stop(self) -> None:
        in_step, self._in_step = self._in_step, None
        if in_step is not None:
            await in_step.stop()
        await self.announcer.stop()
        await self.channels.stop()


def _sync_failed(exc: Exception, retry_in_s: float) -> None:
    log.warning("subscriptions.sync_failed", error_class=type(exc).__name__, retry_in_s=retry_in_s)


async def mark_gone(service: SubscriptionService, subscription_id: str) -> None:
    """Store the subscription as gone; its worker here has stopped already."""
    try:
        await service.gone(subscription_id)
    except Exception as exc:  # noqa: BLE001 - the worker stays stopped; ops must know
        log.error(
            "ops_alert",
            alert="delivery.subscription_gone_not_stored",
            recipient=subscription_id,
            error_class=type(exc).__name__,
        )


def partners(
    settings: Settings,
    runtime: Runtime,
    amqp: AmqpConnection,
    publisher: Publisher,
    topo: Topology,
    store: SqlStore,
    make_worker: Callable[[RecipientEndpoint, Topology, OnGone], DeliveryWorker],
) -> Partners:
    partner_topo = PartnerTopology(topo)
    router = PartnerRouter(amqp, publisher, partner_topo, store, store.get_case)

    def partner_worker(endpoint: RecipientEndpoint, worker_topo: Topology) -> DeliveryWorker:
        async def gone() -> None:
            await mark_gone(service, endpoint.recipient_id)

        return make_worker(endpoint, worker_topo, gone)

    channels = BrokerPartnerChannels(
        amqp,
        partner_topo,
        partner_worker,
        router,
        announce_restored=lambda: announce_restored(publisher, topo),
        clock=runtime.clock,
        deliver=runtime.role.delivers,
    )
    router.when_queue_missing(channels.restore)
    announcer = Announcer(publisher, topo)
    service = SubscriptionService(
        store=store,
        channels=channels,
        clock=runtime.clock,
        new_id=new_subscription_id,
        new_secret=new_webhook_secret,
        changed=lambda: announcer(SUBSCRIPTIONS_CHANGED),
    )
    return Partners(
        service=service,
        channels=channels,
        announcer=announcer,
        sync_s=settings.subscription_sync_s,
        deliver=runtime.role.delivers,
    )


# ---- Ops console and metrics (issue 6) ----


METRICS = web.AppKey("metrics", GatewayMetrics)


def shared_queues(topo: Topology) -> tuple[str, ...]:
    """The queues every recipient shares: the retry ladder's and the parking queue."""
    return (*(topo.retry_queue(step) for step in topo.ladder), topo.parking_queue)


async def live_recipients(runtime: Runtime, store: SqlStore, topo: Topology) -> list[RecipientLive]:
    """112 (and its failover) and every webhook subscription, with the circuit breaker of
    the worker delivering it in this process."""
    found = [
        RecipientLive(
            recipient=worker.recipient,
            kind=RecipientKind.C112
            if worker.recipient == C112_RECIPIENT
            else RecipientKind.C112_FAILOVER,
            queue=topo.deliver_queue(worker.recipient),
            circuit=worker.circuit_state,
        )
        for worker in runtime.workers
    ]
    partner_channels = None if runtime.partners is None else runtime.partners.channels
    for subscription in await store.subscriptions():
        if subscription.mode is not DeliveryMode.WEBHOOK:
            continue
        worker = None
        if partner_channels is not None:
            worker = partner_channels.worker(subscription.subscription_id)
        found.append(
            RecipientLive(
                recipient=subscription.subscription_id,
                kind=RecipientKind.WEBHOOK,
                queue=topo.deliver_queue(subscription.subscription_id),
                circuit=None if worker is None else worker.circuit_state,
                agency_id=subscription.agency_id,
                subscription_status=subscription.status,
            )
        )
    return found


def bind_ops_console(
    app: web.Application, store: SqlStore, amqp: AmqpConnection, topo: Topology
) -> None:
    """The ops console's sources and the metrics' gauges, read from the same places."""
    runtime = app[RUNTIME]
    depths = QueueDepths(amqp)
    shared = shared_queues(topo)
    partner_topo = PartnerTopology(topo)

    async def recipients() -> list[RecipientLive]:
        return await live_recipients(runtime, store, topo)

    async def metric_queue_depths() -> Mapping[str, int]:
        subscriptions = await store.subscriptions()
        queues = [
            *(topo.deliver_queue(worker.recipient) for worker in runtime.workers),
            *shared,
            *(partner_topo.queue_of(subscription) for subscription in subscriptions),
            partner_topo.router_queue,
        ]
        return await depths.depths(queues)

    async def outbox_lag() -> OutboxLag:
        return OutboxLag(await store.outbox_lag(), await store.oldest_unpublished())

    async def circuits() -> Mapping[str, BreakerState]:
        return {
            live.recipient: live.circuit for live in await recipients() if live.circuit is not None
        }

    app[OPS].bind(
        OpsContext(
            log=store,
            clock=runtime.clock,
            recipients=recipients,
            queue_depths=depths.depths,
            shared_queues=shared,
        )
    )
    app[METRICS].bind(
        GaugeSources(queue_depths=metric_queue_depths, outbox_lag=outbox_lag, circuits=circuits)
    )


def token_table(settings: Settings) -> TokenTable:
    """The API's bearer tokens, by role."""
    return TokenTable(
        {
            role: secret.get_secret_value()
            for role, secret in {
                ApiRole.OPS: settings.ops_token,
                ApiRole.SATGAS: settings.satgas_token,
                ApiRole.HEAD: settings.head_token,
                ApiRole.ADMIN: settings.admin_token,
            }.items()
            if secret is not None
        }
    )


def build_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    role: ProcessRole = ProcessRole.ALL,
) -> web.Application:
    """The gateway (or the part ``role`` names) as one aiohttp application; connections
    open at startup."""
    tokens = token_table(settings)
    buckets = TokenBuckets(per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst)
    app = web.Application(
        middlewares=[
            problem_middleware,
            rate_limit_middleware(buckets),
            auth_middleware(tokens, roles_of_route),
        ],
        client_max_size=settings.max_body_bytes,
    )
    runtime = Runtime(settings=settings, clock=clock, role=role)
    app[RUNTIME] = runtime
    app[CONTEXT] = HttpContext(
        max_body_bytes=settings.max_body_bytes,
        registry=runtime.registry,
        clock=clock,
        body_timeout_s=settings.body_timeout_s,
    )
    app[DELIVERY] = DeliveryContext(clock=clock)
    app[CASES] = Slot[CaseService]("the case service")
    app[SUBSCRIPTIONS] = Slot[SubscriptionService]("the subscription service")
    app[OPS] = Slot[OpsContext]("the ops console")
    app.on_shutdown.append(end_streams)
    app[METRICS] = GatewayMetrics(runtime.registry, clock=clock)
    app[CONTEXT].before_scrape.append(app[METRICS].refresh)
    note = sla_scale_note(settings)
    if note is not None:
        app[CONTEXT].notes["sla_scale"] = note
    add_routes(app, ROUTES if role.serves_api else PROBE_ROUTES)
    app.cleanup_ctx.append(_runtime_ctx)
    return app


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context when a certificate is configured (TLS 1.2 at least)."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


async def serve(settings: Settings, role: ProcessRole = ProcessRole.ALL) -> None:
    configure_logging(json=settings.log_json, level=settings.log_level)
    app = build_app(settings, role=role)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tls = tls_context(settings)
    site = web.TCPSite(runner, settings.http_host, settings.http_port, ssl_context=tls)
    await site.start()
    # What start-up built lives as long as the process: kept out of every later full
    # collection, which would otherwise walk all of it on the event loop (some 50 ms).
    gc.collect()
    gc.freeze()
    log.info(
        "gateway.serving",
        host=settings.http_host,
        port=settings.http_port,
        namespace=settings.namespace,
        tls=tls is not None,
        role=role.value,
        frozen_objects=gc.get_freeze_count(),
    )
    await stop_signalled()
    log.info("gateway.stopping")
    await runner.cleanup()


async def stop_signalled() -> None:
    """Return once SIGINT or SIGTERM arrives. Handled here, because neither would stop
    the process otherwise: as PID 1 of a container, or started by a shell's background
    job, which ignores SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def simulate_until_stopped(host: str, port: int, secret: str) -> None:
    """``gateway simulate-112`` / ``simulate-partner``: serve until SIGINT or SIGTERM."""
    serving = asyncio.create_task(run_simulator(host, port, secret), name="simulator")
    stopping = asyncio.create_task(stop_signalled(), name="simulator-stop")
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving  # raises what ended it otherwise, a port in use say


async def replay_parked(settings: Settings, selector: ParkedSelector) -> list[ParkedMessage]:
    """``gateway replay``: put parked messages back from outside a running gateway."""
    store = await open_store(settings)
    amqp = AmqpConnection(
        settings.amqp_url.get_secret_value(), name=f"gateway-replay-{settings.namespace}"
    )
    try:
        await amqp.connect()
        topo = topology(settings)
        await amqp.declare(topo)
        replayer = Replayer(Publisher(amqp, topo), topo, store, clock=utc_now)
        return await replayer.replay(selector, by=audit.Actor("cli", "gateway-replay"))
    finally:
        await amqp.close()
        await store.close()


# ---- Security (issue 7): retention and the audit log, from the command line ----

AUDIT_PAGE = 10_000
PURGE_BATCH = 100
PURGE_NEXT_BATCH_S = 1.0
RETENTION = audit.Actor(audit.SYSTEM_ROLE, "retention")


def retention_purge(
    settings: Settings, store: SqlStore, clock: Callable[[], datetime]
) -> WakeLoop | None:
    """The purge ``gateway purge`` makes, run by the gateway itself every
    ``GATEWAY_PURGE_INTERVAL_S``, a batch at a time (its transactions stay short); each
    round also erases the partner secrets replaced and past their overlap."""
    if settings.purge_interval_s == 0:
        return None

    async def purge_round() -> None:
        now = clock()
        purged = await store.purge_personal_data(
            ended_before=retention.purge_cutoff(now, settings.retention_days),
            now=now,
            actor=RETENTION,
            limit=PURGE_BATCH,
        )
        if purged:
            log.info("retention.purged", cases=len(purged))
        if forgotten := await store.forget_replaced_secrets(now):
            log.info("retention.replaced_secrets_erased", subscriptions=forgotten)
        if len(purged) == PURGE_BATCH:
            loop.wake_in(PURGE_NEXT_BATCH_S)

    def failed(exc: Exception, retry_in_s: float) -> None:
        log.warning("retention.purge_failed", error_class=type(exc).__name__, retry_in_s=retry_in_s)

    loop = WakeLoop(
        "retention-purge",
        purge_round,
        poll_interval_s=settings.purge_interval_s,
        on_failure=failed,
    )
    return loop


async def purge_personal_data(settings: Settings, *, now: datetime | None = None) -> list[str]:
    """``gateway purge``: drop the personal data of cases that ended more than
    ``GATEWAY_RETENTION_DAYS`` ago, and the partner secrets replaced and past their
    overlap; answers the cases' ids."""
    moment = now or utc_now()
    store = await open_store(settings)
    try:
        purged = await store.purge_personal_data(
            ended_before=retention.purge_cutoff(moment, settings.retention_days),
            now=moment,
            actor=audit.Actor("cli", "gateway-purge"),
        )
        await store.forget_replaced_secrets(moment)
        return purged
    finally:
        await store.close()


async def reseal_personal_data(
    settings: Settings, *, write: bool = True, now: datetime | None = None
) -> list[SealedValues]:
    """``gateway reseal``: seal every value again under the first key of
    ``GATEWAY_DATA_KEYS`` (with ``write=False``, count what is sealed under which key)."""
    store = await open_store(settings)
    try:
        return await store.reseal(
            now=now or utc_now(), actor=audit.Actor("cli", "gateway-reseal"), write=write
        )
    finally:
        await store.close()


async def verify_audit(settings: Settings) -> audit.Verdict:
    """``gateway audit verify``: walk the whole chain against its head record."""
    store = await open_store(settings)
    try:
        rows: list[audit.AuditRow] = []
        while page := await store.audit_rows(
            after_seq=rows[-1].seq if rows else 0, limit=AUDIT_PAGE
        ):
            rows.extend(page)
        return audit.verify(rows, await store.audit_head())
    finally:
        await store.close()
