"""The bare pipeline the gateway is measured against, in its own process.

An aiohttp handler publishes each posted body, persistent, with publisher confirms, to
one durable quorum queue (the gateway's queues are quorum queues too) and answers 202;
an aio-pika consumer on the same queue POSTs each message to the receiver and acks it
on a 2xx, or requeues it. No validation, no store, no signing: the floor a gateway on
this broker cannot go below.
"""

import argparse
import asyncio
import signal

import aio_pika
import aiohttp
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web

PREFETCH = 32


async def serve(port: int, amqp_url: str, queue_name: str, receiver_url: str) -> None:
    connection = await aio_pika.connect(amqp_url, client_properties={"connection_name": queue_name})
    publish_channel = await connection.channel(publisher_confirms=True)
    queue = await publish_channel.declare_queue(
        queue_name, durable=True, arguments={"x-queue-type": "quorum"}
    )
    consume_channel = await connection.channel()
    await consume_channel.set_qos(prefetch_count=PREFETCH)
    session = aiohttp.ClientSession()

    async def intake(request: web.Request) -> web.Response:
        body = await request.read()
        await publish_channel.default_exchange.publish(
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=request.headers.get("webhook-id"),
                content_type="application/json",
            ),
            routing_key=queue_name,
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
        await (await consume_channel.get_queue(queue_name)).cancel(consumer)
        await queue.delete(if_unused=False, if_empty=False)
        await session.close()
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmark's bare baseline pipeline")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", required=True)
    parser.add_argument("--receiver-url", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.amqp_url, args.queue, args.receiver_url))


if __name__ == "__main__":
    main()
