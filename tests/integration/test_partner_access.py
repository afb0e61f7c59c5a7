"""`gateway partner-access` prints rabbitmqctl commands; run them against the local
broker and check, with pika, that the user reads its own queue and nothing else."""

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import pika
import pika.exceptions
import pytest
from queue_support import AMQP_URL, rabbitmqctl

from gateway.cli import main
from gateway.partner_access import PartnerAccess, partner_access, vhost_of
from gateway.queue.connection import AmqpConnection
from gateway.queue.publisher import persistent_message

pytestmark = pytest.mark.integration


@pytest.fixture
async def access() -> AsyncIterator[PartnerAccess]:
    ns = f"t{uuid.uuid4().hex[:10]}"
    granted = partner_access(ns, "polres", password=uuid.uuid4().hex)
    connection = AmqpConnection(AMQP_URL, name=f"test-{ns}")
    await connection.connect()
    async with connection.connection.channel() as channel:
        for queue in (granted.queue, f"{ns}.partner.polresx", f"{ns}.partner.other"):
            await channel.declare_queue(queue, durable=True)
            await channel.default_exchange.publish(
                persistent_message(b'{"for": "%s"}' % queue.encode(), str(uuid.uuid4()), {}),
                routing_key=queue,
            )
        await channel.declare_exchange(f"{ns}.events", "topic", durable=True)
    try:
        for command in granted.commands():
            await rabbitmqctl(*command[1:])
        yield granted
    finally:
        with contextlib.suppress(AssertionError):
            await rabbitmqctl("delete_user", granted.user)
        async with connection.connection.channel() as channel:
            for queue in (granted.queue, f"{ns}.partner.polresx", f"{ns}.partner.other"):
                await channel.queue_delete(queue)
            await channel.exchange_delete(f"{ns}.events")
        await connection.close()


def _connect(access: PartnerAccess) -> pika.BlockingConnection:
    url = f"amqp://{access.user}:{access.password}@127.0.0.1:5672/{quote(access.vhost, safe='')}"
    return pika.BlockingConnection(pika.URLParameters(url))


def _read_one(access: PartnerAccess, queue: str) -> bytes:
    connection = _connect(access)
    try:
        channel = connection.channel()
        for method, _, body in channel.consume(queue, inactivity_timeout=5):
            assert method is not None, f"nothing arrived on {queue}"
            channel.basic_ack(method.delivery_tag)
            channel.cancel()
            return bytes(body)
    finally:
        connection.close()
    raise AssertionError("unreachable")


def _refused(access: PartnerAccess, attempt: str, name: str) -> int:
    """The AMQP reply code the broker closes the channel with."""
    connection = _connect(access)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        try:
            match attempt:
                case "consume":
                    channel.basic_consume(name, lambda *_: None)
                case "get":
                    channel.basic_get(name)
                case "publish":
                    channel.basic_publish(name, "case.created.pinang.high", b"{}", mandatory=False)
                case "declare":
                    channel.queue_declare(name, durable=True)
                case "purge":
                    channel.queue_purge(name)
                case "delete":
                    channel.queue_delete(name)
                case "bind":
                    channel.queue_bind(name, name.rsplit(".partner.", 1)[0] + ".events", "#")
        except pika.exceptions.ChannelClosedByBroker as exc:
            return int(exc.reply_code)
        raise AssertionError(f"{attempt} {name} was allowed")
    finally:
        connection.close()


async def test_the_partner_user_reads_its_own_queue(access: PartnerAccess) -> None:
    body = await asyncio.to_thread(_read_one, access, access.queue)

    assert body == b'{"for": "%s"}' % access.queue.encode()


@pytest.mark.parametrize(
    ("attempt", "which"),
    [
        ("consume", "other"),
        ("consume", "prefix"),  # ^...$ is anchored: polresx is not polres
        ("get", "other"),
        ("publish", "events"),
        ("publish", "default"),
        ("declare", "new"),
        ("declare", "own"),
        ("purge", "other"),  # its own queue it may purge: purging needs only read
        ("delete", "own"),
        ("bind", "own"),
    ],
)
async def test_the_partner_user_can_do_nothing_else(
    access: PartnerAccess, attempt: str, which: str
) -> None:
    ns = access.queue.split(".partner.")[0]
    name = {
        "other": f"{ns}.partner.other",
        "prefix": f"{ns}.partner.polresx",
        "events": f"{ns}.events",
        "default": "",
        "new": f"{ns}.partner.mine",
        "own": access.queue,
    }[which]

    code = await asyncio.to_thread(_refused, access, attempt, name)

    assert code == 403  # ACCESS_REFUSED


def test_the_cli_prints_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["partner-access", "dinsos", "--namespace", "gw", "--vhost", "kota"]) == 0

    out = capsys.readouterr().out
    add_user, set_permissions, *comments = out.splitlines()
    assert add_user.startswith("rabbitmqctl add_user gw-partner-dinsos ")
    assert len(add_user.split()[-1]) >= 24
    assert set_permissions == (
        r"rabbitmqctl set_permissions -p kota gw-partner-dinsos '^$' '^$' '^gw\.partner\.dinsos$'"
    )
    assert all(line.startswith("# ") for line in comments)
    assert "rabbitmqctl delete_user gw-partner-dinsos" in out


def test_the_cli_refuses_an_agency_that_is_not_a_word() -> None:
    assert main(["partner-access", "Polres Kota"]) == 2


def test_two_runs_make_two_passwords() -> None:
    outputs = [
        subprocess.run(
            [".venv/bin/gateway", "partner-access", "x"], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    assert outputs[0].split()[3] != outputs[1].split()[3]


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "/"),
        ("amqp://guest:guest@127.0.0.1:5672", "/"),
        ("amqps://u:p@broker:5671/kota", "kota"),
        ("amqp://u:p@broker/%2Fgw", "/gw"),
    ],
)
def test_vhost_of(url: str, vhost: str) -> None:
    assert vhost_of(url) == vhost
