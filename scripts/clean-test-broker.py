"""Delete what earlier test runs left on the local broker (namespaces t<10 hex>, bench*, readme*).

`make test` runs it before the suite: a killed run cannot tear down, and quorum queues
left behind hold file handles until the broker runs out of them.
"""

import asyncio
import re
import subprocess
import sys

import aio_pika

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
LEFTOVER = re.compile(r"^(t[0-9a-f]{10}|bench[\w-]*|readme\d+)\.")


def listed(kind: str) -> list[str]:
    result = subprocess.run(  # noqa: S603 - fixed arguments, rabbitmqctl as an operator runs it
        ["rabbitmqctl", "-q", f"list_{kind}", "name"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        return []
    return [line.strip() for line in result.stdout.splitlines() if LEFTOVER.match(line.strip())]


async def main() -> int:
    queues, exchanges = listed("queues"), listed("exchanges")
    if not queues and not exchanges:
        return 0
    connection = await aio_pika.connect(AMQP_URL, timeout=15)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name)
        for name in exchanges:
            await channel.exchange_delete(name)
    print(f"removed {len(queues)} queues and {len(exchanges)} exchanges left by earlier runs")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
