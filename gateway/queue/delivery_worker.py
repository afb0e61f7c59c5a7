"""Delivers one recipient's queue: sign, POST, classify, then ack, retry later or park.

Per message: a few quick in-process attempts (seconds apart; a short ``Retry-After``
is honoured), each one a row in the delivery log. Then, by verdict:

- delivered → ack;
- retry → a copy goes to the retry ladder (``{ns}.retry``, key ``retry.<D>s.<R>``,
  ``x-attempt`` + 1), which dead-letters it back to this queue after D s; ack once
  the broker confirmed the copy;
- park / gone → a copy with the reason goes to the parking queue; ack. A 410 from a
  subscription's endpoint also stops consuming (the queue keeps filling, nothing is
  lost) and has the subscription marked gone; from 112, it parks as any other 4xx.

A handler crash (a bug, a poison message) nacks with requeue; the queue's delivery
limit then dead-letters the message to the parking queue.

Order: messages of one case are pushed one at a time, and a message is pushed only
when the store says every earlier message of its case for this recipient is settled
(delivered, parked or gone); otherwise it is deferred to the shortest retry step
without counting as an attempt. So a later sequence never overtakes an earlier one
that sits in the retry ladder, even with several worker processes. A copy of a message
this recipient already has (published twice, or redelivered after its push went through)
is acked without a push.

Circuit breaker: after ``threshold`` consecutive failed pushes the worker stops
consuming (its queue keeps filling in the broker) and defers what it holds; after
each cool-down it takes one message off the queue as the single probe, and consumes
again once a probe got through.

Earliest deadline first: at most ``concurrency`` pushes run at once and waiting
pushes take turns by deadline. When the breaker closes again, pushes wait
``drain_window_s`` so the backlog the broker hands over (up to ``prefetch``) lines
up, then drains most urgent first.
"""

import asyncio
import heapq
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

import aiormq
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_random_exponential

from gateway.answer_text import masked_answer
from gateway.circuit_breaker import BreakerState, CircuitBreaker
from gateway.delivery_policy import (
    Delivered,
    Gone,
    Park,
    Retry,
    Verdict,
    choose_retry_queue,
    classify,
    next_delay,
)
from gateway.errors import DeliveryError, StoreUnavailable
from gateway.model import AttemptOutcome, DeliveryAttempt
from gateway.ports import Clock, DeliveryObserver, Pusher, Store
from gateway.queue.connection import AmqpConnection
from gateway.queue.publisher import (
    ATTEMPT,
    CASE_ID,
    DEADLINE_AT,
    SEQUENCE,
    Publisher,
    persistent_message,
)
from gateway.queue.topology import Topology
from gateway.signing import webhook_headers

log = structlog.get_logger()

TRIES = "x-tries"
RECIPIENT = "x-recipient"
PARK_REASON = "x-park-reason"
ERROR_CLASS = "x-error-class"
CIRCUIT_OPEN = "circuit_open"
RESTART_GRACE_S = 2.0
DRAIN_WINDOW_S = 0.25
_BROKER_BOOKKEEPING = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


@dataclass(frozen=True, slots=True)
class RecipientEndpoint:
    recipient_id: str
    url: str
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QuickRetry:
    """In-process attempts before a message goes to the retry ladder."""

    attempts: int = 3
    wait_s: float = 0.5
    max_wait_s: float = 4.0


@dataclass(frozen=True, slots=True)
class _Delivery:
    message_id: str
    body: bytes
    case_id: str
    sequence: int
    deadline_at: datetime | None
    attempt: int
    tries: int
    headers: Mapping[str, Any]

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> "_Delivery":
        if not message.message_id:
            raise ValueError("message without message_id")
        headers = {
            k: v for k, v in message.headers.items() if not k.startswith(_BROKER_BOOKKEEPING)
        }
        deadline = headers.get(DEADLINE_AT)
        return cls(
            message_id=message.message_id,
            body=message.body,
            case_id=_text(headers.get(CASE_ID, "")),
            sequence=int(cast(int, headers.get(SEQUENCE, 0))),
            deadline_at=None if deadline is None else datetime.fromisoformat(_text(deadline)),
            attempt=int(cast(int, headers.get(ATTEMPT, 1))),
            tries=int(cast(int, headers.get(TRIES, 0))),
            headers=headers,
        )


@dataclass(frozen=True, slots=True)
class _Try:
    number: int
    at: datetime
    verdict: Verdict
    latency_ms: float
    status_code: int | None


@dataclass(frozen=True, slots=True)
class _Consumer:
    channel: AbstractRobustChannel
    queue: AbstractQueue
    tag: str | None


class DeliveryWorker:
    def __init__(
        self,
        connection: AmqpConnection,
        publisher: Publisher,
        topology: Topology,
        endpoint: RecipientEndpoint,
        pusher: Pusher,
        store: Store,
        *,
        clock: Clock,
        prefetch: int,
        quick_retry: QuickRetry = QuickRetry(),
        rand: Callable[[], float] = random.random,
        breaker: CircuitBreaker | None = None,
        concurrency: int = 8,
        drain_window_s: float = DRAIN_WINDOW_S,
        observer: DeliveryObserver | None = None,
        on_gone: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``on_gone``, given for a subscription, is awaited after a 410 stopped this
        worker; without it a 410 parks the message as any other 4xx and the worker goes
        on."""
        if endpoint.recipient_id not in topology.recipients:
            raise ValueError(f"no delivery queue for recipient {endpoint.recipient_id!r}")
        self._connection = connection
        self._publisher = publisher
        self._topology = topology
        self._endpoint = endpoint
        self._pusher = pusher
        self._store = store
        self._clock = clock
        self._prefetch = prefetch
        self._quick = quick_retry
        self._rand = rand
        self._consumer: _Consumer | None = None
        self._case_locks = _KeyedLocks()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.gone_reason: str | None = None
        self.breaker = breaker
        self._probe_settled = asyncio.Event()
        self._probe_settled.set()
        self._resume_task: asyncio.Task[None] | None = None
        self._gate = _DeadlineGate(concurrency)
        self._drain_window_s = drain_window_s
        self._observer = observer
        self._on_gone = on_gone

    @property
    def recipient(self) -> str:
        return self._endpoint.recipient_id

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._endpoint.secrets

    def sign_with(self, secrets: tuple[str, ...]) -> None:
        """Sign the pushes from now on with ``secrets`` (a rotation), one signature each."""
        self._endpoint = replace(self._endpoint, secrets=secrets)

    @property
    def circuit_state(self) -> BreakerState:
        """The recipient's circuit as this worker sees it (closed when it has no breaker)."""
        return BreakerState.CLOSED if self.breaker is None else self.breaker.state

    @property
    def consuming(self) -> bool:
        return self._consumer is not None and self._consumer.tag is not None

    @property
    def queue_name(self) -> str:
        return self._topology.deliver_queue(self.recipient)

    async def start(self) -> None:
        if self._consumer is not None:
            return
        channel = await self._connection.consumer_channel(self._prefetch)
        queue = await channel.get_queue(self.queue_name)
        tag = await queue.consume(self.handle)
        self._consumer = _Consumer(channel, queue, tag)
        self.gone_reason = None

    async def restart(self) -> None:
        """Consume again on a new channel (what the old one held goes back to the queue)."""
        await self.stop(grace_s=RESTART_GRACE_S)
        await self.start()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop consuming, let handlers in flight finish, close the channel.

        Deliveries still unacked after ``grace_s`` go back to the queue.
        """
        consumer, self._consumer = self._consumer, None
        resume, self._resume_task = self._resume_task, None
        if resume is not None:
            resume.cancel()
        if consumer is None:
            return
        if consumer.tag is not None:
            await _quietly(consumer.queue.cancel(consumer.tag))
        try:
            async with asyncio.timeout(grace_s):
                await self._idle.wait()
        except TimeoutError:
            log.warning("delivery.stop_grace_exceeded", recipient=self.recipient)
        await _quietly(consumer.channel.close())

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """The consumer callback: settles every message it is given."""
        self._in_flight += 1
        self._idle.clear()
        try:
            delivery = _Delivery.of(message)
            async with self._case_locks.hold(delivery.case_id):
                await self._deliver(message, delivery)
        except Exception as exc:  # noqa: BLE001 — a crash is settled by the delivery limit
            # no traceback: it may quote message content, and logs carry S0 only
            log.error(
                "delivery.handler_failed",
                distribution_id=message.message_id,
                recipient=self.recipient,
                error_class=type(exc).__name__,
                redelivered=message.redelivered,
            )
            await _quietly(message.nack(requeue=True))
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _deliver(self, message: AbstractIncomingMessage, delivery: _Delivery) -> None:
        if await self._store.already_delivered(
            distribution_id=delivery.message_id, recipient=self.recipient
        ):
            log.info(
                "delivery.copy_skipped",
                distribution_id=delivery.message_id,
                case_id=delivery.case_id,
                recipient=self.recipient,
            )
            await message.ack()
            return
        earlier = await self._store.earlier_unsettled(
            case_id=delivery.case_id, recipient=self.recipient, sequence=delivery.sequence
        )
        if earlier is not None:
            await self._defer(delivery, self._topology.ladder[0], "waiting_for_earlier")
            await message.ack()
            return
        last = await self._push_with_quick_retries(delivery)
        match last.verdict:
            case Delivered():
                row = self._attempt(delivery, last, AttemptOutcome.DELIVERED)
                # a failure here settles nothing: the message comes back and is pushed
                # again with the same webhook-id
                await self._store.record_delivered(
                    row,
                    sequence=delivery.sequence,
                    escalation_subjects=(delivery.message_id,) if delivery.deadline_at else (),
                )
                self._observe(row, delivery)
            case Retry(error_class=error_class) if error_class == CIRCUIT_OPEN:
                wait_s = self.breaker.remaining_s(self._clock()) if self.breaker else 0.0
                step = choose_retry_queue(wait_s, self._topology.ladder)
                await self._defer(delivery, step, CIRCUIT_OPEN, tries=last.number)
            case Retry():
                now = self._clock()
                delay_s = max(
                    next_delay(
                        delivery.attempt,
                        now=now,
                        deadline_at=delivery.deadline_at,
                        ladder=self._topology.ladder,
                        rand=self._rand,
                    ),
                    last.verdict.delay_hint_s or 0.0,
                )
                step = choose_retry_queue(delay_s, self._topology.ladder)
                await self._send_to_retry(delivery, last, step)
                next_try_at = now + timedelta(seconds=step)
                await self._record(delivery, last, AttemptOutcome.RETRY, next_try_at=next_try_at)
            case Gone(reason=reason) if self._on_gone is not None:
                await self._send_to_parking(delivery, last, reason)
                await self._record(delivery, last, AttemptOutcome.GONE, reason=reason)
            case Park(reason=reason) | Gone(reason=reason):
                # a 410 stops a subscription; a recipient that is none parks it as any 4xx
                await self._send_to_parking(delivery, last, reason)
                await self._record(delivery, last, AttemptOutcome.PARKED, reason=reason)
        await message.ack()
        if isinstance(last.verdict, Gone) and self._on_gone is not None:
            await self._pause(last.verdict.reason)
            await self._on_gone()

    async def _push_with_quick_retries(self, delivery: _Delivery) -> _Try:
        numbers = iter(range(delivery.tries + 1, delivery.tries + self._quick.attempts + 1))

        async def before_sleep(state: RetryCallState) -> None:
            failed = _try_of(state)
            wait_s = state.next_action.sleep if state.next_action else 0.0
            next_try_at = failed.at + timedelta(seconds=wait_s)
            await self._record(delivery, failed, AttemptOutcome.RETRY, next_try_at=next_try_at)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._quick.attempts) | _StopOnLongHint(self._quick.max_wait_s),
            wait=_WaitAtLeastHint(
                wait_random_exponential(multiplier=self._quick.wait_s, max=self._quick.max_wait_s)
            ),
            retry=retry_if_result(
                lambda t: isinstance(t.verdict, Retry) and t.verdict.error_class != CIRCUIT_OPEN
            ),
            before_sleep=before_sleep,
            retry_error_callback=_try_of,
        )
        last: _Try = await retrying(self._push_once, delivery, numbers)
        return last

    async def _push_once(self, delivery: _Delivery, numbers: Iterator[int]) -> _Try:
        if not await self._admitted():
            last_used = next(numbers) - 1
            return _Try(last_used, self._clock(), Retry(None, CIRCUIT_OPEN), 0.0, None)
        number = next(numbers)
        result: _Try | None = None
        try:
            async with self._gate.turn(delivery.deadline_at):
                result = await self._push(delivery, number)
        finally:
            await self._breaker_learns(None if result is None else result.verdict)
        return result

    async def _push(self, delivery: _Delivery, number: int) -> _Try:
        at = self._clock()
        headers = webhook_headers(self._endpoint.secrets, delivery.message_id, delivery.body, at)
        started = time.monotonic()
        try:
            response = await self._pusher.push(self._endpoint.url, delivery.body, headers)
        except DeliveryError as exc:
            latency_ms = (time.monotonic() - started) * 1000
            return _Try(number, at, classify(None, exc, now=self._clock()), latency_ms, None)
        if response.body_head and not 200 <= response.status <= 299:
            # it may become a park reason: never with what it echoes of the message
            response = replace(response, body_head=masked_answer(response.body_head, delivery.body))
        verdict = classify(response, None, now=self._clock())
        return _Try(number, at, verdict, response.latency_s * 1000, response.status)

    async def _admitted(self) -> bool:
        """Whether the breaker lets a push go; while a probe is out, wait for its verdict."""
        breaker = self.breaker
        if breaker is None:
            return True
        while True:
            if breaker.admits(self._clock()):
                if breaker.state is BreakerState.HALF_OPEN:
                    self._probe_settled.clear()
                    log.info("delivery.circuit_probe", recipient=self.recipient)
                return True
            if breaker.state is not BreakerState.HALF_OPEN:
                return False
            await self._probe_settled.wait()

    async def _breaker_learns(self, verdict: Verdict | None) -> None:
        """A push that got no usable answer (or crashed) counts as a failure."""
        breaker = self.breaker
        if breaker is None:
            return
        was = breaker.state
        if verdict is None or isinstance(verdict, Retry):
            if breaker.failed(self._clock()):
                opened = was is BreakerState.CLOSED  # a failed probe: the same outage
                log.warning(
                    "ops_alert" if opened else "delivery.circuit_probe_failed",
                    **({"alert": "delivery.circuit_open"} if opened else {}),
                    recipient=self.recipient,
                    failures=breaker.failures,
                    cool_down_s=breaker.open_for_s,
                )
                await self._suspend(breaker.open_for_s)
        else:
            breaker.succeeded()
            if was is not BreakerState.CLOSED:
                log.info("delivery.circuit_closed", recipient=self.recipient)
                self._gate.hold(self._drain_window_s)
        self._probe_settled.set()

    async def _suspend(self, for_s: float) -> None:
        """Stop consuming for ``for_s`` seconds; the broker keeps the queue meanwhile."""
        consumer = self._consumer
        if consumer is None or consumer.tag is None:
            return
        self._consumer = replace(consumer, tag=None)
        if self._resume_task is not None:
            self._resume_task.cancel()
        self._resume_task = asyncio.create_task(self._resume_after(for_s), name="breaker-resume")
        await _quietly(consumer.queue.cancel(consumer.tag))

    async def _resume_after(self, delay_s: float) -> None:
        """After each cool-down, take one message off the queue as the probe; consume
        again once a probe got through (or the queue had nothing to probe with)."""
        wait_s = delay_s
        while True:
            await asyncio.sleep(wait_s)
            consumer = self._consumer
            if consumer is None or consumer.tag is not None or self.gone_reason is not None:
                return
            try:
                probe = await consumer.queue.get(no_ack=False, fail=False)
                if probe is not None:
                    await self.handle(probe)
                    if self.gone_reason is not None:
                        return
                    breaker = self.breaker
                    if breaker is not None and breaker.state is not BreakerState.CLOSED:
                        # no push made (deferred for order): take the next one at once
                        wait_s = delay_s if breaker.remaining_s(self._clock()) > 0 else 0.0
                        continue
                tag = await consumer.queue.consume(self.handle)
            except Exception as exc:  # noqa: BLE001 - a paused queue must be resumed, whatever failed
                log.warning("delivery.resume_failed", error_class=type(exc).__name__)
                wait_s = delay_s
                continue
            if self._consumer is consumer:
                self._consumer = replace(consumer, tag=tag)
                log.info("delivery.consuming_again", recipient=self.recipient)
            return

    async def _defer(
        self, delivery: _Delivery, step: int, why: str, *, tries: int | None = None
    ) -> None:
        """Put a message back through a retry step without counting an attempt."""
        log.info(
            "delivery.deferred",
            distribution_id=delivery.message_id,
            case_id=delivery.case_id,
            recipient=self.recipient,
            why=why,
            retry_in_s=step,
        )
        await self._publisher.send(
            self._topology.retry_exchange,
            self._topology.retry_routing_key(step, self.recipient),
            persistent_message(
                delivery.body,
                delivery.message_id,
                {**delivery.headers, TRIES: delivery.tries if tries is None else tries},
            ),
        )

    async def _send_to_retry(self, delivery: _Delivery, last: _Try, step: int) -> None:
        headers = {
            **delivery.headers,
            ATTEMPT: delivery.attempt + 1,
            TRIES: last.number,
            ERROR_CLASS: _error_class(last.verdict),
        }
        await self._publisher.send(
            self._topology.retry_exchange,
            self._topology.retry_routing_key(step, self.recipient),
            persistent_message(delivery.body, delivery.message_id, headers),
        )

    async def _send_to_parking(self, delivery: _Delivery, last: _Try, reason: str) -> None:
        headers = {
            **delivery.headers,
            ATTEMPT: delivery.attempt,
            TRIES: last.number,
            RECIPIENT: self.recipient,
            PARK_REASON: reason,
            ERROR_CLASS: _error_class(last.verdict),
        }
        await self._publisher.send(
            self._topology.dead_letter_exchange,
            self.recipient,
            persistent_message(delivery.body, delivery.message_id, headers),
        )

    async def _record(
        self,
        delivery: _Delivery,
        done: _Try,
        outcome: AttemptOutcome,
        *,
        next_try_at: datetime | None = None,
        reason: str | None = None,
    ) -> None:
        row = self._attempt(delivery, done, outcome, next_try_at=next_try_at, reason=reason)
        try:
            await self._store.record_attempt(row)
        except StoreUnavailable:
            # the push already happened; failing the message now would only repeat it
            log.warning(
                "delivery.log_write_failed",
                distribution_id=delivery.message_id,
                recipient=self.recipient,
                attempt=done.number,
            )
        self._observe(row, delivery)

    def _observe(self, row: DeliveryAttempt, delivery: _Delivery) -> None:
        if self._observer is not None:
            self._observer.attempted(row, delivery.deadline_at)

    def _attempt(
        self,
        delivery: _Delivery,
        done: _Try,
        outcome: AttemptOutcome,
        *,
        next_try_at: datetime | None = None,
        reason: str | None = None,
    ) -> DeliveryAttempt:
        """The delivery-log row of a finished push, logged as it is made."""
        error_class = _error_class(done.verdict)
        log.info(
            f"delivery.{outcome.value}",
            distribution_id=delivery.message_id,
            case_id=delivery.case_id,
            recipient=self.recipient,
            attempt=done.number,
            status=done.status_code,
            error_class=error_class,
        )
        return DeliveryAttempt(
            distribution_id=delivery.message_id,
            case_id=delivery.case_id,
            recipient=self.recipient,
            attempt=done.number,
            at=done.at,
            outcome=outcome,
            latency_ms=done.latency_ms,
            status_code=done.status_code,
            error_class=error_class,
            next_try_at=next_try_at,
            reason=reason,
        )

    async def _pause(self, reason: str) -> None:
        self.gone_reason = reason
        log.warning("ops_alert", alert="delivery.subscription_gone", recipient=self.recipient)
        consumer = self._consumer
        if consumer is None or consumer.tag is None:
            return  # not consuming (a probe of the circuit breaker): the probes stop too
        self._consumer = replace(consumer, tag=None)
        await _quietly(consumer.queue.cancel(consumer.tag))


class _StopOnLongHint(stop_base):
    """Stop quick retries when the recipient asks for a longer wait than they allow."""

    def __init__(self, max_wait_s: float) -> None:
        self._max_wait_s = max_wait_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is None or outcome.failed:
            return False
        verdict = cast(_Try, outcome.result()).verdict
        return (
            isinstance(verdict, Retry)
            and verdict.delay_hint_s is not None
            and verdict.delay_hint_s > self._max_wait_s
        )


class _WaitAtLeastHint(wait_base):
    """Wait as the fallback says, but never less than a ``Retry-After`` asked for."""

    def __init__(self, fallback: wait_base) -> None:
        self._fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        wait_s = self._fallback(retry_state)
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            verdict = cast(_Try, outcome.result()).verdict
            if isinstance(verdict, Retry) and verdict.delay_hint_s is not None:
                return max(wait_s, verdict.delay_hint_s)
        return wait_s


class _DeadlineGate:
    """At most ``slots`` holders at once; waiters are let in earliest deadline first.

    ``hold(s)`` lets nobody in for ``s`` seconds, so that a backlog arriving from the
    broker lines up first and is then let in by deadline rather than by arrival.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("at least one concurrent push")
        self._free = slots
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._held = False

    def hold(self, seconds: float) -> None:
        self._held = True
        asyncio.get_running_loop().call_later(seconds, self._unhold)

    def _unhold(self) -> None:
        self._held = False
        while self._free > 0 and self._grant_next():
            self._free -= 1

    @asynccontextmanager
    async def turn(self, deadline_at: datetime | None) -> AsyncIterator[None]:
        if self._free > 0 and not self._waiting and not self._held:
            self._free -= 1
        else:
            key = float("inf") if deadline_at is None else deadline_at.timestamp()
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (key, next(self._arrivals), granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release()
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        if self._held or not self._grant_next():
            self._free += 1

    def _grant_next(self) -> bool:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                granted.set_result(None)
                return True
        return False


class _KeyedLocks:
    """One FIFO lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _try_of(state: RetryCallState) -> _Try:
    if state.outcome is None:
        raise RuntimeError("retry state without an outcome")
    return cast(_Try, state.outcome.result())


def _error_class(verdict: Verdict) -> str | None:
    return None if isinstance(verdict, Delivered) else verdict.error_class


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _quietly(settling: Awaitable[object]) -> None:
    """Broker calls whose failure needs no handling: the broker requeues what was unsettled."""
    try:
        await settling
    except (
        aiormq.exceptions.AMQPError,
        aiormq.exceptions.ChannelInvalidStateError,
        ConnectionError,
    ) as exc:
        log.warning("amqp.call_failed", error_class=type(exc).__name__)
