"""The composition root: settings in, a wired application out. Nothing connects at import."""

import asyncio
import base64
import contextlib
import secrets
import signal
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import uuid4

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from ulid import ULID

from contracts.envelope import DistributionStatus
from gateway import escalation, signing
from gateway.access import ApiRole
from gateway.adapters.api import add_routes, roles_of_route
from gateway.adapters.auth import TokenTable, auth_middleware
from gateway.adapters.http_api import CONTEXT, HttpContext
from gateway.adapters.http_cases import CASES, CaseHttp
from gateway.adapters.http_delivery import DELIVERY, DeliveryContext
from gateway.adapters.http_subscriptions import SUBSCRIPTIONS, SubscriptionsContext
from gateway.adapters.ops_console import OPS, OpsContext
from gateway.adapters.problems import problem_middleware
from gateway.adapters.push_client import HttpPusher
from gateway.adapters.rate_limit import TokenBuckets, rate_limit_middleware
from gateway.adapters.slot import Slot
from gateway.adapters.store_sqlite import SqliteStore
from gateway.case_messages import Sending, sla_event_messages
from gateway.cases import CaseService
from gateway.circuit_breaker import CircuitBreaker
from gateway.errors import NotReady
from gateway.intake import IntakeService
from gateway.logs import configure_logging
from gateway.model import OutboundMessage, ParkedMessage, ParkedSelector, Timer
from gateway.queue.connection import AmqpConnection
from gateway.queue.delivery_worker import DeliveryWorker, QuickRetry, RecipientEndpoint
from gateway.queue.parking import ParkingRecorder, Replayer
from gateway.queue.partner_router import BrokerPartnerChannels, PartnerRouter, PartnerTopology
from gateway.queue.publisher import Publisher
from gateway.queue.relay import OutboxRelay
from gateway.queue.topology import Topology, build_topology
from gateway.routing import C112_RECIPIENT
from gateway.settings import Settings
from gateway.subscriptions import SubscriptionService
from gateway.timer_service import TimerHandler, TimerService
from gateway.workflow import SLA_BREACHED, SLA_WARNING

log = structlog.get_logger(__name__)

BROKER_RETRY_FIRST_S = 0.5
BROKER_RETRY_MAX_S = 10.0


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
    """Refuse to start with a malformed ``whsec_`` secret rather than fail on first use."""
    for name in ("inbound_secret", "c112_secret"):
        value = getattr(settings, name)
        if value is None:
            continue
        for secret in signing.split_secrets(value.get_secret_value()):
            try:
                signing.secret_key(secret)
            except ValueError as exc:
                raise ValueError(f"GATEWAY_{name.upper()}: {exc}") from None


@dataclass
class Runtime:
    """The running parts, for tests and the CLI to reach; filled in at startup."""

    settings: Settings
    clock: Callable[[], datetime] = utc_now
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    workers: list[DeliveryWorker] = field(default_factory=list)
    parking: ParkingRecorder | None = None
    partners: "Partners | None" = None
    broker_up: asyncio.Event = field(default_factory=asyncio.Event)


RUNTIME = web.AppKey("runtime", Runtime)


async def _broker_check(amqp: AmqpConnection) -> None:
    if not amqp.connection.connected.is_set():
        raise NotReady("the broker connection is down")


async def _bring_up_broker(amqp: AmqpConnection, topo: Topology, runtime: Runtime) -> None:
    """Connect, declare, start consuming; keep trying while the broker is away.

    Intake does not wait for this: accepted reports wait in the outbox meanwhile.
    """
    delay = BROKER_RETRY_FIRST_S
    while True:
        try:
            await amqp.connect()
            await amqp.declare(topo)
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

    def sla_event(timer: Timer) -> tuple[OutboundMessage, ...]:
        return sla_event_messages(timer, now=clock(), sending=who)

    return {
        SLA_WARNING: sla_event,
        SLA_BREACHED: sla_event,
        **delivery_escalation_handlers(settings),
    }


def delivery_escalation_handlers(settings: Settings) -> dict[str, TimerHandler]:
    """``delivery.at_risk`` / ``delivery.deadline_missed``: the pure handlers of
    ``gateway.escalation``, each firing also logged as an ops alert."""
    failover = bool(settings.c112_url and settings.c112_failover_url)

    def alerting(kind: str, handler: TimerHandler) -> TimerHandler:
        def handle(timer: Timer) -> Sequence[OutboundMessage]:
            messages = handler(timer)
            log.warning(
                "ops_alert",
                alert=kind,
                distribution_id=timer.subject,
                case_id=timer.case_id,
                recipient=timer.data.get("recipient"),
                failover=failover and kind == escalation.AT_RISK,
            )
            return messages

        return handle

    return {
        kind: alerting(kind, handler)
        for kind, handler in escalation.handlers(failover=failover).items()
    }


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
    store = await SqliteStore.open(settings.sqlite_path())
    amqp = AmqpConnection(
        settings.amqp_url.get_secret_value(), name=f"gateway-{settings.namespace}"
    )
    topo = topology(settings)
    publisher = Publisher(amqp, topo)
    relay = OutboxRelay(
        store, publisher, poll_interval_s=settings.relay_poll_s, clock=runtime.clock
    )
    timers = TimerService(
        store,
        clock=runtime.clock,
        handlers=timer_handlers(settings, runtime.clock),
        poll_interval_s=settings.sla_timer_poll_s,
        on_fired=relay.wake,
        on_error=_log_timer_error,
    )
    note = sla_scale_note(settings)
    if note is None:
        log.info("sla.scale", scale=settings.sla_scale)
    else:
        log.warning("sla.scale_not_one", scale=settings.sla_scale, note=note)
    session = aiohttp.ClientSession()
    pusher = HttpPusher(session, timeout_s=settings.push_timeout_s)

    def make_worker(endpoint: RecipientEndpoint, worker_topo: Topology) -> DeliveryWorker:
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
            breaker=CircuitBreaker(settings.breaker_threshold, settings.breaker_cool_down_s),
            concurrency=settings.delivery_concurrency,
        )

    runtime.workers = [make_worker(endpoint, topo) for endpoint in recipient_endpoints(settings)]
    runtime.partners = partners(settings, runtime, amqp, publisher, topo, store, make_worker)
    app[SUBSCRIPTIONS].bind(runtime.partners.service)
    runtime.parking = ParkingRecorder(amqp, publisher, topo, store, clock=runtime.clock)
    replayer = Replayer(publisher, topo, store, clock=runtime.clock)
    c112_secret = settings.c112_secret.get_secret_value() if settings.c112_secret else ""
    app[DELIVERY].bind(
        store=store,
        replay=replayer.replay,
        c112_secrets=tuple(signing.split_secrets(c112_secret)),
    )
    inbound = settings.inbound_secret.get_secret_value() if settings.inbound_secret else ""
    app[CONTEXT].bind(
        intake=IntakeService(
            store=store,
            clock=runtime.clock,
            new_case_id=new_case_id,
            new_distribution_id=new_distribution_id,
            on_committed=relay.wake,
            sender_id=settings.sender_id,
            status=DistributionStatus(settings.distribution_status),
            sla_scale=settings.sla_scale,
        ),
        inbound_secrets=tuple(signing.split_secrets(inbound)),
        readiness_checks={"store": store.ping, "broker": lambda: _broker_check(amqp)},
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
    app[OPS].bind(OpsContext(log=store))
    relay.start()
    timers.start()
    broker = asyncio.create_task(_bring_up_broker(amqp, topo, runtime), name="broker-bring-up")
    try:
        yield
    finally:
        broker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await broker
        for worker in runtime.workers:
            await worker.stop()
        if runtime.parking is not None:
            await runtime.parking.stop()
        if runtime.partners is not None:
            await runtime.partners.stop()
        await timers.stop()
        await relay.stop()
        await session.close()
        await amqp.close()
        await store.close()


# ---- Partner subscriptions (issue 5) ----


SUBSCRIPTION_SYNC_S = 5.0  # how soon another process's subscription changes take effect here


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
    sync_s: float = SUBSCRIPTION_SYNC_S
    _in_step: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Declare and start every stored subscription (the router starts with the first),
        then keep the workers in step with the store."""
        await self.service.restore()
        if self._in_step is None:
            self._in_step = asyncio.create_task(self._keep_in_step(), name="subscriptions-sync")

    async def stop(self) -> None:
        task, self._in_step = self._in_step, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.channels.stop()

    async def _keep_in_step(self) -> None:
        while True:
            await asyncio.sleep(self.sync_s)
            try:
                await self.channels.reconcile(self.service.list)
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("subscriptions.sync_failed", error_class=type(exc).__name__)


def partners(
    settings: Settings,
    runtime: Runtime,
    amqp: AmqpConnection,
    publisher: Publisher,
    topo: Topology,
    store: SqliteStore,
    make_worker: Callable[[RecipientEndpoint, Topology], DeliveryWorker],
) -> Partners:
    partner_topo = PartnerTopology(topo)
    router = PartnerRouter(amqp, publisher, partner_topo, store, store.get_case)
    channels = BrokerPartnerChannels(amqp, partner_topo, make_worker, router)
    service = SubscriptionService(
        store=store,
        channels=channels,
        clock=runtime.clock,
        new_id=new_subscription_id,
        new_secret=new_webhook_secret,
    )
    return Partners(service=service, channels=channels)


def build_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> web.Application:
    """The whole gateway as one aiohttp application; connections open at startup."""
    tokens = TokenTable(
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
    buckets = TokenBuckets(per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst)
    app = web.Application(
        middlewares=[
            problem_middleware,
            rate_limit_middleware(buckets),
            auth_middleware(tokens, roles_of_route),
        ],
        client_max_size=settings.max_body_bytes,
    )
    runtime = Runtime(settings=settings, clock=clock)
    app[RUNTIME] = runtime
    app[CONTEXT] = HttpContext(
        max_body_bytes=settings.max_body_bytes,
        registry=runtime.registry,
        clock=clock,
        body_timeout_s=settings.body_timeout_s,
    )
    app[DELIVERY] = DeliveryContext(clock=clock)
    app[CASES] = CaseHttp()
    app[SUBSCRIPTIONS] = SubscriptionsContext()
    app[OPS] = Slot[OpsContext]("the ops console")
    note = sla_scale_note(settings)
    if note is not None:
        app[CONTEXT].notes["sla_scale"] = note
    add_routes(app)
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


async def serve(settings: Settings) -> None:
    configure_logging(json=settings.log_json, level=settings.log_level)
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tls = tls_context(settings)
    site = web.TCPSite(runner, settings.http_host, settings.http_port, ssl_context=tls)
    await site.start()
    log.info(
        "gateway.serving",
        host=settings.http_host,
        port=settings.http_port,
        namespace=settings.namespace,
        tls=tls is not None,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("gateway.stopping")
    await runner.cleanup()


async def replay_parked(settings: Settings, selector: ParkedSelector) -> list[ParkedMessage]:
    """``gateway replay``: put parked messages back from outside a running gateway."""
    store = await SqliteStore.open(settings.sqlite_path())
    amqp = AmqpConnection(
        settings.amqp_url.get_secret_value(), name=f"gateway-replay-{settings.namespace}"
    )
    try:
        await amqp.connect()
        topo = topology(settings)
        await amqp.declare(topo)
        replayer = Replayer(Publisher(amqp, topo), topo, store, clock=utc_now)
        return await replayer.replay(selector)
    finally:
        await amqp.close()
        await store.close()
