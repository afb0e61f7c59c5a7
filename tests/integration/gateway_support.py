"""Running the whole gateway in a test: real RabbitMQ, SQLite in tmp, a real 112 simulator."""

import asyncio
import json
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer
from log_scan import RUN_SCAN
from samples import TEST_DATA_KEYS, new_secret, sealer_for_test

from gateway import signing
from gateway.adapters.simulator_112 import create_simulator_app
from gateway.adapters.store import SqlStore
from gateway.bootstrap import RUNTIME, build_app, open_store, topology
from gateway.queue.connection import AmqpConnection
from gateway.queue.notices import announce_restored
from gateway.queue.partner_router import PartnerTopology, delete_partner_base
from gateway.queue.publisher import Publisher
from gateway.queue.topology import delete
from gateway.settings import Settings

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass
class RunningGateway:
    client: TestClient[Any, Any]
    sim: TestClient[Any, Any]
    settings: Settings
    inbound_secret: str
    c112_secret: str

    async def post_report(
        self, body: bytes, *, secret: str | None = None, msg_id: str | None = None
    ) -> tuple[int, Any]:
        msg_id = msg_id or str(uuid.uuid4())
        headers = signing.webhook_headers(
            [secret or self.inbound_secret], msg_id, body, datetime.now(UTC)
        )
        response = await self.client.post("/v1/reports/si-lacak-perak", data=body, headers=headers)
        return response.status, await response.json(content_type=None)

    async def sim_messages(self) -> list[dict[str, Any]]:
        response = await self.sim.get("/_sim/messages")
        messages: list[dict[str, Any]] = await response.json()
        return messages

    async def wait_for_sim(self, count: int, timeout_s: float) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout_s):
            while len(messages := await self.sim_messages()) < count:  # noqa: ASYNC110 - another server
                await asyncio.sleep(0.01)
        return messages

    async def store(self) -> SqlStore:
        """The gateway's store, opened beside it with its settings."""
        return await open_store(self.settings)


def serve_env(**values: str) -> dict[str, str]:
    """The environment of a ``gateway`` process of a test: this one's without any
    ``GATEWAY_`` variable, the test broker and data key, then ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_AMQP_URL=AMQP_URL, GATEWAY_DATA_KEYS=TEST_DATA_KEYS, GATEWAY_LOG_JSON="true")
    env.update(values)
    return env


@contextmanager
def serving(tmp_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``gateway serve`` in a process of its own with ``env`` (from ``serve_env``), for
    blocking tests; then stopped, its log fed to the run's log scan and its namespace
    deleted. The caller waits for it to answer."""
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(__file__).parents[2] / ".venv/bin/gateway"), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    RUN_SCAN.write(log_path.read_text(encoding="utf-8", errors="replace"))
    delete_served_namespace(tmp_path, env)


def delete_served_namespace(tmp_path: Path, env: dict[str, str]) -> None:
    """Delete what a stopped ``gateway serve`` process with ``env`` declared: its
    namespace, with the retry ladder it was given (``GATEWAY_RETRY_DELAYS_S``) or the
    default one, not the tests' shorter ladder."""
    given = env.get("GATEWAY_RETRY_DELAYS_S")
    ladder = (
        list(Settings.model_fields["retry_delays_s"].default)
        if given is None
        else [int(step) for step in json.loads(given)]
    )
    settings = settings_for_test(
        tmp_path,
        namespace=env["GATEWAY_NAMESPACE"],
        database_url=env["GATEWAY_DATABASE_URL"],
        retry_delays_s=ladder,
    )
    asyncio.run(delete_namespace(settings))


async def queues_on_broker(settings: Settings) -> list[str]:
    """The queues of ``settings``' topology that the broker has now."""
    connection = AmqpConnection(AMQP_URL, name="test-queues-on-broker")
    await connection.connect()
    found = []
    try:
        for queue in topology(settings).queues():
            # a passive declare of a missing queue closes its channel: one channel each
            async with connection.connection.channel() as channel:
                try:
                    await channel.declare_queue(queue.name, passive=True)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    continue
                found.append(queue.name)
    finally:
        await connection.close()
    return found


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():  # noqa: ASYNC110 - polling another server
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s} s: {what}") from None


@asynccontextmanager
async def other_connection() -> AsyncIterator[AmqpConnection]:
    """A broker connection of its own, as another gateway process or an operator has."""
    other = AmqpConnection(AMQP_URL, name="test-other-process")
    await other.connect()
    try:
        yield other
    finally:
        await other.close()


async def restore_as_another_process(
    settings: Settings, declare: Callable[[AbstractChannel], Awaitable[object]]
) -> None:
    """What another gateway process does once it found a queue of ``settings``' gone:
    ``declare`` it again on a connection of its own, then announce it on the control
    exchange."""
    topo = topology(settings)
    async with other_connection() as other:
        async with other.connection.channel() as channel:
            await declare(channel)
        await announce_restored(Publisher(other, topo), topo)


def settings_for_test(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "amqp_url": AMQP_URL,
        "database_url": f"sqlite:///{tmp_path / 'gateway.sqlite3'}",
        "namespace": f"t{uuid.uuid4().hex[:10]}",
        "http_port": 0,
        "retry_delays_s": [1, 2],
        "relay_poll_s": 0.5,
        "data_keys": TEST_DATA_KEYS,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@asynccontextmanager
async def running_gateway(
    tmp_path: Path,
    *,
    clock: Callable[[], datetime] | None = None,
    wait_for_broker: bool = True,
    **overrides: Any,
) -> AsyncIterator[RunningGateway]:
    """The gateway with a 112 simulator; ``clock`` replaces the wall clock (for the SOP
    timers), ``overrides`` any setting (``sla_scale``, ``satgas_token``, ``namespace`` ...).
    It is yielded once its broker topology is up, unless ``wait_for_broker`` is false."""
    inbound_secret = new_secret()
    c112_secret = new_secret()
    sim = TestClient(TestServer(create_simulator_app(secret=c112_secret)))
    await sim.start_server()
    settings = settings_for_test(
        tmp_path,
        inbound_secret=inbound_secret,
        c112_secret=c112_secret,
        c112_url=str(sim.make_url("/v1/messages")),
        **overrides,
    )
    app = build_app(settings) if clock is None else build_app(settings, clock=clock)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        if wait_for_broker:
            async with asyncio.timeout(15):
                await app[RUNTIME].broker_up.wait()
        yield RunningGateway(client, sim, settings, inbound_secret, c112_secret)
    finally:
        await client.close()
        await sim.close()
        await delete_namespace(settings)


async def delete_namespace(settings: Settings) -> None:
    connection = AmqpConnection(AMQP_URL, name="test-teardown")
    await connection.connect()
    try:
        async with connection.connection.channel() as channel:
            await delete(channel, topology(settings))
            await delete_partner_queues(channel, settings)
    finally:
        await connection.close()


# ---- Partner subscriptions (issue 5): their queues live as long as the subscriptions ----


async def delete_partner_queues(channel: AbstractChannel, settings: Settings) -> None:
    """The queues of every subscription the gateway stored, the router's queue and the
    partner exchange."""
    url = settings.database_url.get_secret_value()
    subscriptions = []
    if not url.startswith("sqlite:///") or settings.sqlite_path().exists():
        store = await SqlStore.connect(url, sealer=sealer_for_test())
        try:
            subscriptions = await store.subscriptions()
        finally:
            await store.close()
    partner_topology = PartnerTopology(topology(settings))
    for subscription in subscriptions:
        await channel.queue_delete(partner_topology.queue_of(subscription))
    await delete_partner_base(channel, partner_topology)
