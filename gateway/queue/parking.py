"""The parking lot: the store keeps parked messages; the broker's parking queue only carries
them there.

``ParkingRecorder`` consumes ``{ns}.parking`` — messages the worker parked (4xx, 410)
and messages the broker dead-lettered after the delivery limit (a poison message) —
writes each into the store with its reason and attempt counts, announces
``delivery.parked.<recipient>.-`` on the events exchange, alerts ops, then acks.

``Replayer`` puts parked messages back on their recipient's delivery queue: a new
attempt, the same ``message_id`` (so the same ``webhook-id``), then marks them replayed.
"""

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel

from gateway.audit import Actor
from gateway.errors import StoreUnavailable
from gateway.model import ParkedMessage, ParkedSelector
from gateway.ports import Clock, Store
from gateway.queue.connection import AmqpConnection
from gateway.queue.delivery_worker import ERROR_CLASS, PARK_REASON, RECIPIENT, TRIES
from gateway.queue.publisher import (
    ATTEMPT,
    CASE_ID,
    DEADLINE_AT,
    SEQUENCE,
    Publisher,
    persistent_message,
)
from gateway.queue.topology import Topology

log = structlog.get_logger()

STORE_RETRY_S = 1.0
PARKED_EVENT = "delivery.parked.{recipient}.-"


def parked_message_of(
    message: AbstractIncomingMessage, topology: Topology, now: datetime
) -> ParkedMessage:
    """What the parking queue carries, as the store keeps it."""
    message_id = message.message_id or f"unidentified:{uuid.uuid4()}"
    return parked_from(message_id, message.body, message.headers, topology, now)


def parked_from(
    message_id: str,
    body: bytes,
    headers: Mapping[str, Any],
    topology: Topology,
    now: datetime,
) -> ParkedMessage:
    """Never raises: whatever arrives here is kept, with what can be read of it."""
    reason = headers.get(PARK_REASON)
    recipient = headers.get(RECIPIENT)
    error_class = headers.get(ERROR_CLASS)
    if reason is None:  # dead-lettered by the broker, not by a worker
        why = _text(headers.get("x-first-death-reason", "unknown"))
        reason = f"dead-lettered by the broker: {why}"
        error_class = why
        queue = _text(headers.get("x-first-death-queue", ""))
        prefix = topology.deliver_queue("")
        recipient = queue[len(prefix) :] if queue.startswith(prefix) else "unknown"
    return ParkedMessage(
        distribution_id=message_id,
        recipient=_text(recipient or "unknown"),
        case_id=_text(headers.get(CASE_ID, "")),
        sequence=_int(headers.get(SEQUENCE), 0),
        deadline_at=_datetime(headers.get(DEADLINE_AT)),
        attempt=_int(headers.get(ATTEMPT), 1),
        tries=_int(headers.get(TRIES), 0),
        reason=_text(reason),
        error_class=None if error_class is None else _text(error_class),
        parked_at=now,
        body=body,
    )


class ParkingRecorder:
    def __init__(
        self,
        connection: AmqpConnection,
        publisher: Publisher,
        topology: Topology,
        store: Store,
        *,
        clock: Clock,
    ) -> None:
        self._connection = connection
        self._publisher = publisher
        self._topology = topology
        self._store = store
        self._clock = clock
        self._channel: AbstractRobustChannel | None = None

    @property
    def queue_name(self) -> str:
        return self._topology.parking_queue

    @property
    def consuming(self) -> bool:
        return self._channel is not None

    async def start(self) -> None:
        if self._channel is not None:
            return
        channel = await self._connection.consumer_channel(16)
        queue = await channel.get_queue(self.queue_name)
        await queue.consume(self.handle)
        self._channel = channel

    async def stop(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    async def restart(self) -> None:
        """Consume again on a new channel (what the old one held goes back to the queue)."""
        await self.stop()
        await self.start()

    async def handle(self, message: AbstractIncomingMessage) -> None:
        parked = parked_message_of(message, self._topology, self._clock())
        try:
            new = await self._store.park(parked)
        except StoreUnavailable:
            log.warning("parking.store_unavailable", distribution_id=parked.distribution_id)
            await asyncio.sleep(STORE_RETRY_S)
            await message.nack(requeue=True)
            return
        if new:
            log.warning(
                "ops_alert",
                alert="delivery.parked",
                distribution_id=parked.distribution_id,
                case_id=parked.case_id,
                recipient=parked.recipient,
                error_class=parked.error_class,
                attempt=parked.attempt,
            )
            await self._announce(parked)
        await message.ack()

    async def _announce(self, parked: ParkedMessage) -> None:
        event = {
            "event": "delivery.parked",
            "distribution_id": parked.distribution_id,
            "case_id": parked.case_id,
            "recipient": parked.recipient,
            "error_class": parked.error_class,
            "parked_at": parked.parked_at.isoformat(),
        }
        try:
            await self._publisher.send(
                self._topology.events_exchange,
                PARKED_EVENT.format(recipient=parked.recipient),
                persistent_message(
                    json.dumps(event).encode(),
                    f"parked:{parked.distribution_id}:{parked.recipient}",
                    {CASE_ID: parked.case_id},
                ),
            )
        except Exception as exc:  # noqa: BLE001 - the event is a notification; the park is kept
            log.warning("parking.announce_failed", error_class=type(exc).__name__)


class Replayer:
    """Parked messages back onto their delivery queue."""

    def __init__(
        self, publisher: Publisher, topology: Topology, store: Store, *, clock: Clock
    ) -> None:
        self._publisher = publisher
        self._topology = topology
        self._store = store
        self._clock = clock

    async def replay(self, selector: ParkedSelector, *, by: Actor) -> list[ParkedMessage]:
        """Replay what ``selector`` picks, oldest first, at the request of ``by`` (for the
        audit log); answers what was put back.

        Raises ``PublishFailed`` (what was confirmed before stays replayed)."""
        replayed: list[ParkedMessage] = []
        for parked in await self._store.parked(selector):
            if parked.recipient not in self._topology.recipients:
                log.warning("replay.unknown_recipient", distribution_id=parked.distribution_id)
                continue
            headers: dict[str, Any] = {
                CASE_ID: parked.case_id,
                SEQUENCE: parked.sequence,
                ATTEMPT: parked.attempt + 1,
                TRIES: parked.tries,
            }
            if parked.deadline_at is not None:
                headers[DEADLINE_AT] = parked.deadline_at.isoformat()
            await self._publisher.send(
                self._topology.deliver_exchange,
                parked.recipient,
                persistent_message(parked.body, parked.distribution_id, headers),
            )
            await self._store.mark_replayed([parked.parked_id], self._clock(), by=by)
            log.info(
                "delivery.replayed",
                distribution_id=parked.distribution_id,
                case_id=parked.case_id,
                recipient=parked.recipient,
                attempt=parked.attempt + 1,
            )
            replayed.append(parked)
        return replayed


def _int(value: object, default: int) -> int:
    try:
        return int(cast(int, value))
    except (TypeError, ValueError):
        return default


def _datetime(value: object) -> datetime | None:
    try:
        return None if value is None else datetime.fromisoformat(_text(value))
    except ValueError:
        return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
