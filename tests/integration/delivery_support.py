"""Helpers of the delivery tests: unique reports, signed receipts, ops calls, updates."""

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aio_pika.abc import AbstractIncomingMessage
from aiohttp.test_utils import TestClient, TestServer
from gateway_support import (
    AMQP_URL,
    RunningGateway,
    delete_namespace,
    eventually,
    settings_for_test,
)
from samples import fixture_json, new_secret

from gateway import signing
from gateway.adapters.simulator_112 import create_simulator_app
from gateway.bootstrap import RUNTIME, build_app, topology
from gateway.model import Destination, OutboundMessage
from gateway.queue.connection import AmqpConnection
from gateway.settings import Settings

OPS_TOKEN = "ops-token-for-tests-0123456789"
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


def unique_report(name: str = "valid-01-app-basic.json") -> bytes:
    report = fixture_json(name)
    report["id_laporan"] = f"SLP-TEST-{uuid.uuid4().hex[:12]}"
    return json.dumps(report).encode()


async def accepted_case(gw: RunningGateway) -> str:
    status, body = await gw.post_report(unique_report())
    assert status == 202, body
    case_id: str = body["case_id"]
    return case_id


def update(case_id: str, sequence: int, *, deadline_at: datetime | None = None) -> OutboundMessage:
    """A later message of a case to 112, as a status report would be."""
    distribution_id = str(uuid.uuid4())
    body = {
        "distribution_id": distribution_id,
        "case_id": case_id,
        "kind": "update",
        "schema": "status-report/1",
        "sequence": sequence,
    }
    return OutboundMessage(
        destination=Destination.DELIVER,
        routing_key="c112",
        message_id=distribution_id,
        case_id=case_id,
        sequence=sequence,
        body=json.dumps(body).encode(),
        deadline_at=deadline_at,
    )


async def post_receipt(
    gw: RunningGateway,
    receipt: dict[str, Any],
    *,
    secret: str | None = None,
    msg_id: str | None = None,
) -> tuple[int, Any]:
    body = json.dumps(receipt).encode()
    headers = signing.webhook_headers(
        [secret or gw.c112_secret], msg_id or str(uuid.uuid4()), body, datetime.now(UTC)
    )
    response = await gw.client.post("/v1/c112/receipts", data=body, headers=headers)
    return response.status, await response.json(content_type=None)


async def ops_get(gw: RunningGateway, path: str) -> Any:
    response = await gw.client.get(path, headers=OPS)
    assert response.status == 200, await response.text()
    return await response.json()


async def set_sim_mode(gw: RunningGateway, **mode: Any) -> None:
    response = await gw.sim.put("/_sim/mode", json=mode)
    assert response.status == 200, await response.text()


def accepted_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [
        m["headers"]["webhook-id"]
        for m in messages
        if m["answered"] is not None and 200 <= m["answered"] < 300
    ]


class EventTap:
    """A private queue on the events exchange, bound to ``key``, read without acks."""

    def __init__(self, settings: Settings, key: str = "delivery.#") -> None:
        self._settings = settings
        self._key = key
        self.connection = AmqpConnection(AMQP_URL, name=f"test-tap-{uuid.uuid4().hex[:6]}")
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._queue_name = f"{settings.namespace}.test-tap.{uuid.uuid4().hex[:8]}"

    async def __aenter__(self) -> "EventTap":
        await self.connection.connect()
        channel = await self.connection.connection.channel()
        queue = await channel.declare_queue(self._queue_name, exclusive=True, auto_delete=True)
        await queue.bind(topology(self._settings).events_exchange, routing_key=self._key)

        async def take(message: AbstractIncomingMessage) -> None:
            self.events.append((message.routing_key or "", json.loads(message.body)))

        await queue.consume(take, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    def named(self, event: str) -> list[dict[str, Any]]:
        return [body for _, body in self.events if body.get("event") == event]


@dataclass
class WithFailover:
    gw: RunningGateway
    failover: TestClient[Any, Any]

    async def failover_messages(self) -> list[dict[str, Any]]:
        response = await self.failover.get("/_sim/messages")
        messages: list[dict[str, Any]] = await response.json()
        return messages


@asynccontextmanager
async def gateway_with_failover(tmp_path: Path, **overrides: Any) -> AsyncIterator[WithFailover]:
    """``running_gateway`` with a second 112 simulator as the failover endpoint."""
    inbound_secret, c112_secret = new_secret(), new_secret()
    sim = TestClient(TestServer(create_simulator_app(secret=c112_secret)))
    failover = TestClient(TestServer(create_simulator_app(secret=c112_secret)))
    await sim.start_server()
    await failover.start_server()
    settings = settings_for_test(
        tmp_path,
        inbound_secret=inbound_secret,
        c112_secret=c112_secret,
        c112_url=str(sim.make_url("/v1/messages")),
        c112_failover_url=str(failover.make_url("/v1/messages")),
        **overrides,
    )
    app = build_app(settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        async with asyncio.timeout(15):
            await app[RUNTIME].broker_up.wait()
        yield WithFailover(
            RunningGateway(client, sim, settings, inbound_secret, c112_secret), failover
        )
    finally:
        await client.close()
        await sim.close()
        await failover.close()
        await delete_namespace(settings)


@dataclass
class ServeProcess:
    """``gateway serve`` in a process of its own (``role``: all, api or worker)."""

    env: dict[str, str]
    log_path: Path
    role: str = "all"
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_HTTP_PORT']}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--role",
            self.role,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()

        async def ready() -> bool:
            try:
                async with session.get(f"{self.url}/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, 20, "gateway serve is ready")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
