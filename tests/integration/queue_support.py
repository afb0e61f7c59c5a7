"""Shared pieces of the real-broker queue tests: a fake store, a real little pusher, a
scripted recipient server and helpers to read queues."""

import asyncio
import itertools
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import uuid4

import aiohttp
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web

from contracts.case import Case
from gateway import audit
from gateway.errors import TransientDeliveryError
from gateway.model import (
    AcceptedReport,
    AttemptOutcome,
    DeliveryAttempt,
    Destination,
    IntakeResult,
    OutboundMessage,
    OutboxRow,
    ParkedMessage,
    ParkedSelector,
    PushResponse,
    QuarantinedInput,
    ReceiptRecord,
    Timer,
    TimerEffects,
)
from gateway.queue.connection import AmqpConnection
from gateway.queue.topology import Topology, build_topology, delete

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/?reconnect_interval=0.5"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def utcnow() -> datetime:
    return datetime.now(UTC)


class FakeStore:
    """The outbox and the delivery log as lists."""

    def __init__(self) -> None:
        self.outbox: list[OutboxRow] = []
        self.published: dict[int, datetime] = {}
        self.attempts: list[DeliveryAttempt] = []
        self.settled: dict[tuple[str, str], AttemptOutcome] = {}
        self.parking_lot: list[ParkedMessage] = []
        self.cancelled_timers: list[str] = []
        self.timers: list[Timer] = []
        self.claims = 0
        self.held: set[int] = set()  # rows written held for a hand-over
        self._recorded = asyncio.Condition()

    async def accept_report(self, report: AcceptedReport) -> IntakeResult:
        raise NotImplementedError

    async def quarantine(self, item: QuarantinedInput) -> str:
        raise NotImplementedError

    async def claim_outbox(
        self, claimant: str, limit: int, *, now: datetime, lease_s: float, own: bool = True
    ) -> list[OutboxRow]:
        self.claims += 1
        pending = [row for row in self.outbox if row.id not in self.published]
        return [row for row in pending if own or row.id not in self.held][:limit]

    async def release_outbox(self, claimant: str, ids: Sequence[int]) -> None:
        return None

    async def mark_published(self, ids: Sequence[int], at: datetime) -> None:
        for row_id in ids:
            self.published[row_id] = at

    async def record_attempt(self, attempt: DeliveryAttempt) -> None:
        async with self._recorded:
            self.attempts.append(attempt)
            self._recorded.notify_all()

    async def wait_for_attempts(self, count: int, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s), self._recorded:
            await self._recorded.wait_for(lambda: len(self.attempts) >= count)

    async def get_case(self, case_id: str) -> Case | None:
        return None

    # Delivery: order, parking lot, receipts — in memory

    async def _settle(
        self,
        *,
        distribution_id: str,
        recipient: str,
        case_id: str,
        sequence: int,
        outcome: AttemptOutcome,
        at: datetime,
    ) -> None:
        self.settled[(distribution_id, recipient)] = outcome

    async def earlier_unsettled(self, *, case_id: str, recipient: str, sequence: int) -> str | None:
        for row in self.outbox:
            m = row.message
            if (
                m.case_id == case_id
                and m.destination is Destination.DELIVER
                and m.routing_key == recipient
                and m.sequence < sequence
                and (m.message_id, recipient) not in self.settled
            ):
                return m.message_id
        return None

    async def already_delivered(self, *, distribution_id: str, recipient: str) -> bool:
        return self.settled.get((distribution_id, recipient)) is AttemptOutcome.DELIVERED

    async def enqueue_outbound(self, messages: Sequence[OutboundMessage]) -> None:
        for message in messages:
            self.outbox.append(OutboxRow(len(self.outbox) + 1, message))

    async def park(self, message: ParkedMessage) -> bool:
        key = (message.distribution_id, message.recipient)
        if any((p.distribution_id, p.recipient) == key for p in self.parking_lot):
            return False
        self.parking_lot.append(replace(message, parked_id=len(self.parking_lot) + 1))
        self.settled.setdefault(key, AttemptOutcome.PARKED)
        return True

    async def parked(self, selector: ParkedSelector, limit: int = 1000) -> list[ParkedMessage]:
        return [
            p
            for p in self.parking_lot
            if selector.distribution_id in (None, p.distribution_id)
            and selector.case_id in (None, p.case_id)
            and selector.recipient in (None, p.recipient)
        ][:limit]

    async def mark_replayed(
        self, parked_ids: Sequence[int], at: datetime, *, by: audit.Actor
    ) -> None:
        for p in [p for p in self.parking_lot if p.parked_id in parked_ids]:
            self.parking_lot.remove(p)
            key = (p.distribution_id, p.recipient)
            if self.settled.get(key) is not AttemptOutcome.DELIVERED:
                self.settled.pop(key, None)

    async def record_receipt(self, receipt: ReceiptRecord) -> tuple[ReceiptRecord, bool]:
        raise NotImplementedError

    async def receipts(self, *, case_id: str) -> list[ReceiptRecord]:
        raise NotImplementedError

    async def schedule_timers(self, timers: Sequence[Timer]) -> None:
        self.timers.extend(timers)

    async def record_delivered(
        self, attempt: DeliveryAttempt, *, sequence: int, escalation_subjects: Sequence[str]
    ) -> None:
        await self._settle(
            distribution_id=attempt.distribution_id,
            recipient=attempt.recipient,
            case_id=attempt.case_id,
            sequence=sequence,
            outcome=attempt.outcome,
            at=attempt.at,
        )
        await self.record_attempt(attempt)
        for subject in escalation_subjects:
            await self.cancel_timers(subject=subject)

    async def cancel_timers(self, *, subject: str) -> int:
        self.cancelled_timers.append(subject)
        before = len(self.timers)
        self.timers = [t for t in self.timers if t.subject != subject]
        return before - len(self.timers)

    async def fire_due_timers(
        self, now: datetime, limit: int, handle: Callable[[Timer], TimerEffects]
    ) -> list[Timer]:
        due = [t for t in self.timers if t.fire_at <= now][:limit]
        for timer in due:
            self.timers.remove(timer)
            effects = handle(timer)
            for message in effects.outgoing:
                self.outbox.append(OutboxRow(len(self.outbox) + 1, message))
            self.attempts.extend(effects.delivery_log)
            self.timers.extend(effects.timers)
        return due

    async def next_timer_due(self) -> datetime | None:
        return min((t.fire_at for t in self.timers), default=None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class AiohttpPusher:
    def __init__(self, session: aiohttp.ClientSession, timeout_s: float = 5.0) -> None:
        self._session = session
        self._timeout_s = timeout_s
        self.calls = 0

    async def push(self, url: str, body: bytes, headers: Mapping[str, str]) -> PushResponse:
        self.calls += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._session.post(url, data=body, headers=dict(headers)) as resp:
                    text = await resp.text()
        except TimeoutError as exc:
            raise TransientDeliveryError("timeout") from exc
        except aiohttp.ClientError as exc:
            raise TransientDeliveryError("connection", type(exc).__name__) from exc
        return PushResponse(
            status=resp.status,
            latency_s=time.monotonic() - started,
            headers=dict(resp.headers),
            body_head=text[:200],
        )


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class Recipient:
    """A webhook receiver that answers from a script (then 200) and records what came."""

    def __init__(self, *replies: Reply) -> None:
        self.script = list(replies)
        self.received: list[Received] = []
        self.events: list[tuple[str, str]] = []
        self._arrived = asyncio.Condition()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        self.events.append(("start", msg_id))
        reply = self.script.pop(0) if self.script else Reply()
        await asyncio.sleep(reply.delay_s)
        self.events.append(("end", msg_id))
        async with self._arrived:
            self.received.append(
                Received(time.monotonic(), {k.lower(): v for k, v in request.headers.items()}, body)
            )
            self._arrived.notify_all()
        return web.Response(status=reply.status, text=reply.text, headers=reply.headers)

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return self.received


async def next_message(
    connection: AmqpConnection, queue_name: str, timeout_s: float = 10.0
) -> AbstractIncomingMessage:
    """Take one message off a queue (acked), waiting for it to arrive."""
    async with connection.connection.channel() as channel:
        queue = await channel.get_queue(queue_name)
        async with asyncio.timeout(timeout_s):
            while True:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    return message
                await asyncio.sleep(0.05)


async def message_count(connection: AmqpConnection, queue_name: str) -> int:
    async with connection.connection.channel() as channel:
        queue = await channel.declare_queue(queue_name, passive=True)
        count = queue.declaration_result.message_count
        assert count is not None
        return count


async def rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def close_broker_connections(name: str) -> int:
    """Have the broker drop every connection of the ``AmqpConnection`` named ``name``
    (it has two, ``{name}/consume`` and ``{name}/publish``), as a broker restart would."""
    listing = await rabbitmqctl("list_connections", "pid", "client_properties", "-q", "-s")
    closed = 0
    for line in listing.splitlines():
        pid, _, properties = line.partition("\t")
        if f'{{"connection_name","{name}/' in properties:
            await rabbitmqctl("close_connection", pid, "test: simulated broker restart")
            closed += 1
    return closed


async def close_broker_connection(name: str) -> None:
    """Like ``close_broker_connections``; there must be some to close."""
    assert await close_broker_connections(name) == 2, f"no broker connections named {name}"


class Broker:
    """A connection for one test, its namespace, and teardown of what it declared."""

    def __init__(self) -> None:
        self.ns = f"t{uuid4().hex[:10]}"
        self.connection = AmqpConnection(AMQP_URL, name=f"test-{self.ns}")
        self._declared: list[Topology] = []

    async def topology(
        self,
        recipients: Sequence[str] = ("c112",),
        ladder: Sequence[int] = (1,),
        delivery_limit: int = 5,
    ) -> Topology:
        topology = build_topology(
            self.ns, recipients=recipients, ladder=ladder, delivery_limit=delivery_limit
        )
        self._declared.append(topology)
        await self.connection.declare(topology)
        return topology

    @classmethod
    @asynccontextmanager
    async def opened(cls) -> AsyncIterator["Broker"]:
        broker = cls()
        await broker.connection.connect()
        try:
            yield broker
        finally:
            try:
                async with broker.connection.connection.channel() as channel:
                    for topology in broker._declared:
                        await delete(channel, topology)
            finally:
                await broker.connection.close()


# A port handed out here is bound by its server only later (a process still starting).
# Ports the kernel picks (for port 0, and for outgoing connections) come from the
# ephemeral range, 32768 and up; these come from below it, a block per pytest-xdist
# worker, each in turn: no other worker, server or client of this run takes them meanwhile.
_PORTS_BASE = 20_000
_PORTS_PER_WORKER = 1_500
_next_port = itertools.count()


def unused_port() -> int:
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")) % 8
    first = _PORTS_BASE + worker * _PORTS_PER_WORKER
    for _ in range(_PORTS_PER_WORKER):
        port = first + next(_next_port) % _PORTS_PER_WORKER
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {first}..{first + _PORTS_PER_WORKER - 1}")
