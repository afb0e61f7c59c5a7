"""The broker topology as data, every name under one namespace prefix ``ns``.

    {ns}.events      topic   alternate-exchange {ns}.unroutable
    {ns}.unroutable  fanout  → queue {ns}.unroutable (the latest 10 000 only)
    {ns}.deliver     topic   → queue {ns}.deliver.<R>  keys "<R>" and "retry.*.<R>"
                                  delivery limit, dead-letters to {ns}.dlx
    {ns}.retry       topic   → queue {ns}.retry.<D>s   key "retry.<D>s.*"
                                  TTL D s, dead-letters back to {ns}.deliver keeping
                                  the key "retry.<D>s.<R>", so it lands on <R>'s queue
    {ns}.dlx         fanout  → queue {ns}.parking
    {ns}.control     fanout  → one exclusive queue per gateway process (broker notices)

Every queue is a quorum queue; every dead-lettering queue uses the at-least-once
strategy, which needs ``x-overflow=reject-publish``.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel

from gateway.topics import matches

_WORD = re.compile(r"^[A-Za-z0-9_-]+$")


class ExchangeKind(StrEnum):
    TOPIC = "topic"
    FANOUT = "fanout"


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    name: str
    kind: ExchangeKind
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BindingSpec:
    queue: str
    exchange: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class Topology:
    ns: str
    recipients: tuple[str, ...]
    ladder: tuple[int, ...]
    delivery_limit: int

    def __post_init__(self) -> None:
        for word in (self.ns, *self.recipients):
            if not _WORD.match(word):
                raise ValueError(f"not a routing-key word: {word!r}")
        if not self.ladder or any(step <= 0 for step in self.ladder):
            raise ValueError("retry ladder steps must be positive seconds")
        if self.delivery_limit < 1:
            raise ValueError("delivery limit must be at least 1")

    @property
    def events_exchange(self) -> str:
        return f"{self.ns}.events"

    @property
    def unroutable_exchange(self) -> str:
        return f"{self.ns}.unroutable"

    @property
    def unroutable_queue(self) -> str:
        return f"{self.ns}.unroutable"

    @property
    def deliver_exchange(self) -> str:
        return f"{self.ns}.deliver"

    @property
    def retry_exchange(self) -> str:
        return f"{self.ns}.retry"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.ns}.dlx"

    @property
    def control_exchange(self) -> str:
        """Fanout to every gateway process: each binds a queue of its own to it."""
        return f"{self.ns}.control"

    @property
    def parking_queue(self) -> str:
        return f"{self.ns}.parking"

    def deliver_queue(self, recipient: str) -> str:
        return f"{self.ns}.deliver.{recipient}"

    def retry_queue(self, delay_s: int) -> str:
        return f"{self.ns}.retry.{delay_s}s"

    @staticmethod
    def retry_routing_key(delay_s: int, recipient: str) -> str:
        return f"retry.{delay_s}s.{recipient}"

    def exchanges(self) -> tuple[ExchangeSpec, ...]:
        return (
            ExchangeSpec(self.unroutable_exchange, ExchangeKind.FANOUT),
            ExchangeSpec(
                self.events_exchange,
                ExchangeKind.TOPIC,
                {"alternate-exchange": self.unroutable_exchange},
            ),
            ExchangeSpec(self.dead_letter_exchange, ExchangeKind.FANOUT),
            ExchangeSpec(self.deliver_exchange, ExchangeKind.TOPIC),
            ExchangeSpec(self.retry_exchange, ExchangeKind.TOPIC),
            ExchangeSpec(self.control_exchange, ExchangeKind.FANOUT),
        )

    def queues(self) -> tuple[QueueSpec, ...]:
        return (
            # events no one subscribes to are normal: keep the latest few for inspection
            QueueSpec(
                self.unroutable_queue,
                {**_quorum(), "x-max-length": UNROUTABLE_KEPT, "x-overflow": "drop-head"},
            ),
            QueueSpec(self.parking_queue, _quorum()),
            *(self.deliver_queue_spec(r) for r in self.recipients),
            *(self.retry_queue_spec(d) for d in self.ladder),
        )

    def deliver_queue_spec(self, recipient: str) -> QueueSpec:
        return QueueSpec(
            self.deliver_queue(recipient),
            {
                **_quorum(),
                "x-delivery-limit": self.delivery_limit,
                **_dead_letter_to(self.dead_letter_exchange),
            },
        )

    def retry_queue_spec(self, delay_s: int) -> QueueSpec:
        return QueueSpec(
            self.retry_queue(delay_s),
            {
                **_quorum(),
                "x-message-ttl": delay_s * 1000,
                **_dead_letter_to(self.deliver_exchange),
            },
        )

    # ---- Recipients added at run time: partner webhook subscriptions (issue 5) ----

    def with_recipients(self, *recipients: str) -> "Topology":
        """The same topology with more recipients, each with its own delivery queue."""
        return replace(self, recipients=tuple(dict.fromkeys((*self.recipients, *recipients))))

    def recipient_bindings(self, recipient: str) -> tuple[BindingSpec, ...]:
        return tuple(
            BindingSpec(self.deliver_queue(recipient), self.deliver_exchange, key)
            for key in (recipient, f"retry.*.{recipient}")
        )

    def bindings(self) -> tuple[BindingSpec, ...]:
        return (
            BindingSpec(self.unroutable_queue, self.unroutable_exchange, ""),
            BindingSpec(self.parking_queue, self.dead_letter_exchange, ""),
            *(b for r in self.recipients for b in self.recipient_bindings(r)),
            *(
                BindingSpec(self.retry_queue(d), self.retry_exchange, f"retry.{d}s.*")
                for d in self.ladder
            ),
        )

    def declares_exchange(self, name: str) -> bool:
        return any(e.name == name for e in self.exchanges())

    def binds(self, exchange: str, routing_key: str) -> bool:
        """Whether a message published to ``exchange`` with ``routing_key`` reaches one of
        this topology's queues when it is all declared."""
        fanouts = {e.name for e in self.exchanges() if e.kind is ExchangeKind.FANOUT}
        return any(
            b.exchange == exchange and (exchange in fanouts or matches(b.routing_key, routing_key))
            for b in self.bindings()
        )


def build_topology(
    ns: str, *, recipients: Iterable[str], ladder: Sequence[int], delivery_limit: int
) -> Topology:
    return Topology(
        ns=ns,
        recipients=tuple(dict.fromkeys(recipients)),
        ladder=tuple(sorted(set(ladder))),
        delivery_limit=delivery_limit,
    )


UNROUTABLE_KEPT = 10_000


def _quorum() -> dict[str, Any]:
    return {"x-queue-type": "quorum"}


def _dead_letter_to(exchange: str) -> dict[str, Any]:
    return {
        "x-dead-letter-exchange": exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare(channel: AbstractChannel, topology: Topology) -> dict[str, int]:
    """Declare every exchange, queue and binding. Idempotent while the arguments agree;
    a queue declared earlier with other arguments makes the broker close the channel.
    Answers each queue's number of consumers, as the broker counted them (when it said)."""
    exchanges = {}
    for ex in topology.exchanges():
        exchanges[ex.name] = await channel.declare_exchange(
            ex.name,
            aio_pika.ExchangeType(ex.kind.value),
            durable=True,
            arguments=dict(ex.arguments),
        )
    queues = {}
    for q in topology.queues():
        queues[q.name] = await channel.declare_queue(
            q.name, durable=True, arguments=dict(q.arguments)
        )
    for b in topology.bindings():
        await queues[b.queue].bind(exchanges[b.exchange], routing_key=b.routing_key)
    counted = {name: queue.declaration_result.consumer_count for name, queue in queues.items()}
    return {name: count for name, count in counted.items() if count is not None}


async def delete(channel: AbstractChannel, topology: Topology) -> None:
    """Remove every queue and exchange of the topology, messages included."""
    for q in topology.queues():
        await channel.queue_delete(q.name)
    for ex in topology.exchanges():
        await channel.exchange_delete(ex.name)


# ---- Recipients added at run time: partner webhook subscriptions (issue 5) ----


async def declare_recipient(channel: AbstractChannel, topology: Topology, recipient: str) -> None:
    """Declare one recipient's delivery queue and bindings, as ``declare`` would; the
    exchanges must exist already."""
    spec = topology.deliver_queue_spec(recipient)
    queue = await channel.declare_queue(spec.name, durable=True, arguments=dict(spec.arguments))
    for binding in topology.recipient_bindings(recipient):
        await queue.bind(binding.exchange, routing_key=binding.routing_key)


async def delete_recipient(channel: AbstractChannel, topology: Topology, recipient: str) -> None:
    """Remove one recipient's delivery queue, messages included."""
    await channel.queue_delete(topology.deliver_queue(recipient))
