"""The composition root: settings in, a wired application out. Nothing connects at import."""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import uuid4

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from ulid import ULID

from contracts.envelope import DistributionStatus
from gateway import signing
from gateway.access import ApiRole
from gateway.adapters.api import add_routes, roles_of_route
from gateway.adapters.auth import TokenTable, auth_middleware
from gateway.adapters.http_api import CONTEXT, HttpContext
from gateway.adapters.problems import problem_middleware
from gateway.adapters.push_client import HttpPusher
from gateway.adapters.store_sqlite import SqliteStore
from gateway.errors import NotReady
from gateway.intake import IntakeService
from gateway.logs import configure_logging
from gateway.queue.connection import AmqpConnection
from gateway.queue.delivery_worker import DeliveryWorker, QuickRetry, RecipientEndpoint
from gateway.queue.publisher import Publisher
from gateway.queue.relay import OutboxRelay
from gateway.queue.topology import Topology, build_topology
from gateway.routing import C112_RECIPIENT
from gateway.settings import Settings

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
        endpoints.append(
            RecipientEndpoint(
                recipient_id=C112_RECIPIENT,
                url=settings.c112_url,
                secrets=tuple(signing.split_secrets(settings.c112_secret.get_secret_value())),
            )
        )
    return endpoints


def topology(settings: Settings) -> Topology:
    return build_topology(
        settings.namespace,
        recipients=(C112_RECIPIENT,),
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
        except Exception as exc:  # noqa: BLE001 - any failure here means "try again later"
            log.warning("broker.unavailable", error_class=type(exc).__name__, retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BROKER_RETRY_MAX_S)
            continue
        runtime.broker_up.set()
        log.info("broker.ready", namespace=topo.ns)
        return


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
    session = aiohttp.ClientSession()
    pusher = HttpPusher(session, timeout_s=settings.push_timeout_s)
    runtime.workers = [
        DeliveryWorker(
            amqp,
            publisher,
            topo,
            endpoint,
            pusher,
            store,
            clock=runtime.clock,
            prefetch=settings.prefetch,
            quick_retry=QuickRetry(attempts=settings.push_attempts),
        )
        for endpoint in recipient_endpoints(settings)
    ]
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
        ),
        inbound_secrets=tuple(signing.split_secrets(inbound)),
        readiness_checks={"store": store.ping, "broker": lambda: _broker_check(amqp)},
    )
    relay.start()
    broker = asyncio.create_task(_bring_up_broker(amqp, topo, runtime), name="broker-bring-up")
    try:
        yield
    finally:
        broker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await broker
        for worker in runtime.workers:
            await worker.stop()
        await relay.stop()
        await session.close()
        await amqp.close()
        await store.close()


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
    app = web.Application(
        middlewares=[problem_middleware, auth_middleware(tokens, roles_of_route)],
        client_max_size=settings.max_body_bytes,
    )
    runtime = Runtime(settings=settings, clock=clock)
    app[RUNTIME] = runtime
    app[CONTEXT] = HttpContext(
        max_body_bytes=settings.max_body_bytes, registry=runtime.registry, clock=clock
    )
    add_routes(app)
    app.cleanup_ctx.append(_runtime_ctx)
    return app


async def serve(settings: Settings) -> None:
    configure_logging(json=settings.log_json, level=settings.log_level)
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    log.info(
        "gateway.serving",
        host=settings.http_host,
        port=settings.http_port,
        namespace=settings.namespace,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("gateway.stopping")
    await runner.cleanup()
