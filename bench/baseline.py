"""The bare pipelines the gateway is measured against, each in its own process.

The bare baseline: an aiohttp handler publishes each posted body, persistent, with
publisher confirms, to one durable quorum queue (the gateway's queues are quorum queues
too) and answers 202; an aio-pika consumer on the same queue POSTs each message to the
receiver and acks it on a 2xx, or requeues it. No validation, no store, no signing: the
floor a gateway on this broker cannot go below.

With ``--outbox FILE``, the minimal outbox gateway the issue measures against: the
handler first commits the body to an outbox table in a SQLite file (WAL,
``synchronous=FULL``, on the event loop's thread, as the gateway's store does), wakes
the relay and answers 202; the relay publishes what is unpublished, the same way, and
marks it published. The same consumer delivers. None of the gateway's real work: the
floor of an outbox design on this machine.
"""

import argparse
import asyncio
import signal
import sqlite3
from pathlib import Path

import aio_pika
import aiohttp
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiohttp import web

PREFETCH = 32
RELAY_BATCH = 100
RETRY_S = 0.5


def _message(body: bytes, message_id: str | None) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        content_type="application/json",
    )


class Outbox:
    """One SQLite table of bodies to publish, and the relay that publishes them, woken
    by each commit."""

    def __init__(self, path: Path, channel: AbstractChannel, queue_name: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level="IMMEDIATE")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, message_id TEXT, "
            "body BLOB NOT NULL, published INTEGER NOT NULL DEFAULT 0)"
        )
        self._conn.execute(
            "CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published = 0"
        )
        self._channel = channel
        self._queue_name = queue_name
        self._wake = asyncio.Event()
        self._relay = asyncio.create_task(self._run())

    def add(self, body: bytes, message_id: str | None) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO outbox (message_id, body) VALUES (?, ?)", (message_id, body)
            )
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._publish_pending()
            except (
                aio_pika.exceptions.AMQPError,
                aio_pika.exceptions.ChannelInvalidStateError,
                ConnectionError,
            ):
                # unconfirmed rows stay unpublished: try them again shortly
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def _publish_pending(self) -> None:
        while rows := self._conn.execute(
            "SELECT id, message_id, body FROM outbox WHERE published = 0 ORDER BY id LIMIT ?",
            (RELAY_BATCH,),
        ).fetchall():
            await asyncio.gather(
                *(
                    self._channel.default_exchange.publish(
                        _message(body, message_id), routing_key=self._queue_name
                    )
                    for _, message_id, body in rows
                )
            )
            with self._conn:
                self._conn.executemany(
                    "UPDATE outbox SET published = 1 WHERE id = ?", [(row[0],) for row in rows]
                )

    async def close(self) -> None:
        self._relay.cancel()
        await asyncio.gather(self._relay, return_exceptions=True)
        self._conn.close()


async def serve(
    port: int, amqp_url: str, queue_name: str, receiver_url: str, outbox_path: Path | None
) -> None:
    connection = await aio_pika.connect(amqp_url, client_properties={"connection_name": queue_name})
    publish_channel = await connection.channel(publisher_confirms=True)
    queue = await publish_channel.declare_queue(
        queue_name, durable=True, arguments={"x-queue-type": "quorum"}
    )
    consume_channel = await connection.channel()
    await consume_channel.set_qos(prefetch_count=PREFETCH)
    session = aiohttp.ClientSession()
    outbox = None if outbox_path is None else Outbox(outbox_path, publish_channel, queue_name)

    async def intake(request: web.Request) -> web.Response:
        body = await request.read()
        message_id = request.headers.get("webhook-id")
        if outbox is not None:
            outbox.add(body, message_id)
        else:
            await publish_channel.default_exchange.publish(
                _message(body, message_id), routing_key=queue_name
            )
        return web.json_response({"accepted": True}, status=202)

    async def deliver(message: AbstractIncomingMessage) -> None:
        headers = {"content-type": "application/json", "webhook-id": message.message_id or ""}
        try:
            async with session.post(receiver_url, data=message.body, headers=headers) as answer:
                await answer.read()
                delivered = 200 <= answer.status < 300
        except aiohttp.ClientError:
            delivered = False
        if delivered:
            await message.ack()
        else:
            await asyncio.sleep(0.5)
            await message.nack(requeue=True)

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ready")

    consumer = await (await consume_channel.get_queue(queue_name)).consume(deliver)
    app = web.Application()
    app.router.add_post("/v1/reports/si-lacak-perak", intake)
    app.router.add_get("/readyz", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if outbox is not None:
            await outbox.close()
        await (await consume_channel.get_queue(queue_name)).cancel(consumer)
        await queue.delete(if_unused=False, if_empty=False)
        await session.close()
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmark's bare baseline pipelines")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", required=True)
    parser.add_argument("--receiver-url", required=True)
    parser.add_argument(
        "--outbox", type=Path, help="a SQLite file: run the minimal outbox gateway instead"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.amqp_url, args.queue, args.receiver_url, args.outbox))


if __name__ == "__main__":
    main()
