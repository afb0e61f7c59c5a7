"""The systems under test, each a child process posting to the shared receiver:
the gateway (``gateway serve``), the bare baseline and the minimal outbox gateway
(``bench/baseline.py``)."""

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika

from bench.processes import LOOPBACK, Meter, Service, child_env, python_module, unused_port
from gateway.adapters.sealing import new_data_key
from gateway.bootstrap import new_webhook_secret, topology
from gateway.queue.topology import delete
from gateway.settings import Settings

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
INTAKE_PATH = "/v1/reports/si-lacak-perak"
UNLIMITED = 1_000_000
TEARDOWN_S = 120.0


@dataclass
class Target:
    """A running system under test: its processes, the first of which takes reports."""

    name: str
    services: list[Service]
    base_url: str
    inbound_secret: str
    reads_decision: bool
    namespace: str
    server: str | None = None  # the database server's process name, when it has one

    @property
    def intake_url(self) -> str:
        return self.base_url + INTAKE_PATH

    def meter(self) -> Meter:
        return Meter([s.pid for s in self.services], server=self.server)


@dataclass(frozen=True)
class GatewaySetup:
    """How the gateway runs: one ``--role all`` process, or one ``--role api`` process and
    ``workers`` ``--role worker`` processes; on SQLite (a file in the work directory) or
    on the PostgreSQL database at ``database_url``."""

    workers: int = 0
    database_url: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "store": "sqlite" if self.database_url is None else "postgresql",
            "api_processes": 1,
            "worker_processes": self.workers,
        }


async def start_gateway(
    work_dir: Path, receiver_url: str, command: Sequence[str], setup: GatewaySetup
) -> Target:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    inbound = new_webhook_secret()
    database_url = setup.database_url or f"sqlite:///{work_dir / 'gateway.sqlite3'}"
    shared = dict(
        GATEWAY_HTTP_HOST=LOOPBACK,
        GATEWAY_NAMESPACE=namespace,
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_AMQP_URL=AMQP_URL,
        GATEWAY_C112_URL=receiver_url,
        GATEWAY_C112_SECRET=new_webhook_secret(),
        GATEWAY_INBOUND_SECRET=inbound,
        GATEWAY_DATA_KEYS=new_data_key(),
        GATEWAY_LOG_JSON="true",
        # The load generator is one source IP, as Si Lacak Perak is: the per-IP limit
        # would measure itself, not the gateway.
        GATEWAY_RATE_LIMIT_PER_S=str(UNLIMITED),
        GATEWAY_RATE_LIMIT_BURST=str(UNLIMITED),
    )
    roles = ["all"] if setup.workers == 0 else ["api"] + ["worker"] * setup.workers
    target = Target(
        "gateway",
        [],
        "",
        inbound,
        True,
        namespace,
        server=None if setup.database_url is None else "postgres",
    )
    try:
        # one after the other: the first applies the migrations
        for n, role in enumerate(roles):
            port = unused_port()
            name = "gateway" if n == 0 else f"gateway-{role}-{n}"
            env = child_env(**shared, GATEWAY_HTTP_PORT=str(port))
            service = Service(name, [*command, "--role", role], env, work_dir)
            target.services.append(service)
            url = f"http://{LOOPBACK}:{port}"
            target.base_url = target.base_url or url
            await service.wait_ready(url + "/readyz", timeout_s=60)
    except RuntimeError:
        await stop(target)
        raise
    return target


async def start_baseline(work_dir: Path, receiver_url: str, *, outbox: bool = False) -> Target:
    """The bare baseline, or with ``outbox`` the minimal outbox gateway (its SQLite file
    in ``work_dir``)."""
    name = "outbox-baseline" if outbox else "baseline"
    port = unused_port()
    queue = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    argv = python_module(
        "bench.baseline",
        "--port",
        str(port),
        "--amqp-url",
        AMQP_URL,
        "--queue",
        queue,
        "--receiver-url",
        receiver_url,
        *(["--outbox", str(work_dir / f"{queue}.sqlite3")] if outbox else []),
    )
    service = Service(name, argv, child_env(), work_dir)
    base_url = f"http://{LOOPBACK}:{port}"
    target = Target(name, [service], base_url, new_webhook_secret(), False, queue)
    await service.wait_ready(base_url + "/readyz")
    return target


async def stop(target: Target) -> None:
    """Stop the processes; for the gateway, also delete its exchanges and queues."""
    for service in target.services:
        service.stop()
    if target.name != "gateway":
        return
    settings = Settings.model_validate({"namespace": target.namespace})
    async with asyncio.timeout(TEARDOWN_S):
        connection = await aio_pika.connect(AMQP_URL, timeout=TEARDOWN_S)
        try:
            async with connection.channel() as channel:
                await delete(channel, topology(settings))
        finally:
            await connection.close()
