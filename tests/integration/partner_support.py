"""Helpers of the partner tests: admin calls, partner webhook receivers, a pika reader,
and teardown of what subscriptions declared."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiormq
import pika
from aiohttp.test_utils import TestClient, TestServer
from gateway_support import AMQP_URL, RunningGateway
from samples import fixture_json, new_secret

from gateway.adapters.simulator_112 import create_simulator_app
from gateway.queue.connection import AmqpConnection

ADMIN_TOKEN = "admin-token-for-partner-tests-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def unique_report(name: str) -> bytes:
    report = fixture_json(name)
    report["id_laporan"] = f"SLP-PARTNER-{uuid.uuid4().hex[:12]}"
    return json.dumps(report).encode()


async def admin(
    gw: RunningGateway,
    method: str,
    path: str,
    body: Any = None,
    *,
    expect: int = 200,
    token: str = ADMIN_TOKEN,
) -> Any:
    response = await gw.client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    text = await response.text()
    assert response.status == expect, text
    return json.loads(text) if text else None


async def subscribe(gw: RunningGateway, **fields: Any) -> dict[str, Any]:
    created: dict[str, Any] = await admin(gw, "POST", "/v1/subscriptions", fields, expect=201)
    return created


@dataclass
class Partner:
    """A partner agency's webhook receiver: the partner simulator, with its own secret."""

    client: TestClient[Any, Any]
    secret: str

    @property
    def url(self) -> str:
        return str(self.client.make_url("/"))

    async def messages(self) -> list[dict[str, Any]]:
        response = await self.client.get("/_sim/messages")
        found: list[dict[str, Any]] = await response.json()
        return found

    async def accepted(self) -> list[dict[str, Any]]:
        """Bodies it accepted, one per webhook-id (a retry of an accepted one counts once)."""
        bodies: dict[str, dict[str, Any]] = {}
        for message in await self.messages():
            answered = message["answered"]
            if message["signature_valid"] and answered is not None and 200 <= answered < 300:
                bodies.setdefault(message["headers"]["webhook-id"], message["body"])
        return list(bodies.values())

    async def set_mode(self, **mode: Any) -> None:
        response = await self.client.put("/_sim/mode", json=mode)
        assert response.status == 200, await response.text()


@asynccontextmanager
async def partner() -> AsyncIterator[Partner]:
    secret = new_secret()
    client = TestClient(TestServer(create_simulator_app(secret=secret)))
    await client.start_server()
    try:
        yield Partner(client, secret)
    finally:
        await client.close()


async def delete_partners(gw: RunningGateway) -> None:
    """Delete every subscription through the API, their queues with them (what is left,
    the router's queue and the partner exchange, goes with the namespace)."""
    listing = await admin(gw, "GET", "/v1/subscriptions")
    for subscription in listing["subscriptions"]:
        await admin(
            gw, "DELETE", f"/v1/subscriptions/{subscription['subscription_id']}", expect=204
        )


async def declared(queue: str) -> aiormq.spec.Queue.DeclareOk | None:
    """The broker's answer to a passive declare of ``queue`` (its messages and
    consumers), or None when there is no such queue."""
    connection = AmqpConnection(AMQP_URL, name="test-partner-depth")
    await connection.connect()
    try:
        async with connection.connection.channel() as channel:
            try:
                return (await channel.declare_queue(queue, passive=True)).declaration_result
            except aiormq.exceptions.ChannelNotFoundEntity:
                return None
    finally:
        await connection.close()


async def queue_depth(queue: str) -> int:
    result = await declared(queue)
    assert result is not None, f"no queue {queue}"
    assert result.message_count is not None
    return result.message_count


def pika_read(
    queue: str,
    count: int,
    *,
    timeout_s: float,
    quiet_s: float = 1.0,
    url: str = "amqp://guest:guest@127.0.0.1:5672/%2F",
) -> list[tuple[pika.spec.BasicProperties, bytes]]:
    """Consume with pika (not the gateway's AMQP library): wait for ``count`` messages,
    then ``quiet_s`` more to catch any extra one; ack each. Blocking: run it in a thread."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    taken: list[tuple[pika.spec.BasicProperties, bytes]] = []
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout_s
        quiet_until: float | None = None
        for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
            now = time.monotonic()
            if method is not None:
                taken.append((properties, body))
                channel.basic_ack(method.delivery_tag)
            if len(taken) >= count and quiet_until is None:
                quiet_until = now + quiet_s
            if (quiet_until is not None and now >= quiet_until) or now >= deadline:
                break
        channel.cancel()
    finally:
        connection.close()
    return taken
