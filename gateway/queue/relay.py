"""The outbox relay: publishes committed outbox rows, in order, and marks them published
only once the broker confirmed them.

The intake writes its outbox rows held by this relay already (``new_claim``, for
``HAND_HOLD_S``) and hands them over right after its commit (``hand``): a lane of their
own publishes them at once, without a transaction to claim them and without waiting
behind a claimed batch, its confirms or its publication mark. Whatever else writes
outbox rows calls ``wake()``, and the relay claims what is pending but the rows it
holds for a hand-over. It also claims at least every ``poll_interval_s``, which
catches what no wake-up announced: rows left by a crash, a failed publish, a hand-over
that never came. While the broker is down rows stay in the outbox and the relay backs
off; the robust connection comes back by itself.

Several gateway processes may share one store: each relay claims the rows it publishes
for a lease (``CLAIM_LEASE_S``), so no row is published twice while its relay lives,
and the rows of a relay that died are taken over when their lease has passed.
"""

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from gateway.model import OutboundMessage, OutboxClaim, OutboxRow
from gateway.ports import Clock, Store
from gateway.queue.publisher import PublishFailed
from gateway.wake_loop import BACKOFF_MAX_S, WakeLoop

log = structlog.get_logger()

CLAIM_LEASE_S = 30.0
# How long rows written for this relay stay its own before any relay may claim them:
# handed over, they are published within milliseconds; not handed over (the intake
# was cancelled between its commit and the hand-over), they wait this long.
HAND_HOLD_S = 5.0
# Rows handed over and not yet published, kept in memory at most; past it, rows are
# left in the store, where the relay claims them in order (memory must not grow with
# a backlog while the intake outruns the relay).
HAND_LIMIT = 1000
# Publishes awaiting their confirms at once. Each confirm must come within the
# publisher's timeout, and on a busy loop a whole claimed batch of them did not.
PUBLISH_WINDOW = 16


class OutboundPublisher(Protocol):
    async def publish(self, message: OutboundMessage) -> None: ...


class OutboxRelay:
    def __init__(
        self,
        store: Store,
        publisher: OutboundPublisher,
        *,
        claimant: str,
        poll_interval_s: float,
        batch: int = 100,
        window: int = PUBLISH_WINDOW,
        hand_limit: int = HAND_LIMIT,
        clock: Clock,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        if batch < 1 or window < 1:
            raise ValueError("batch and window must be at least 1")
        self._store = store
        self._claimant = claimant
        self._publisher = publisher
        self._batch = batch
        self._window = window
        self._hand_limit = hand_limit
        self._clock = clock
        self._poll_interval_s = poll_interval_s
        self._handed: list[OutboxRow] = []
        self._handed_by = float("inf")  # before the hold of the oldest handed row runs out
        self._claim_wanted = True
        self._recovering = True  # at start and after a failure: own rows are claimed too
        self._next_claim_at = 0.0
        self._loop = WakeLoop(
            "outbox-relay",
            self._drain_once,
            poll_interval_s=poll_interval_s,
            on_failure=self._failed,
            backoff_max_s=backoff_max_s,
        )
        # Held by the hand-over lane while it publishes and by a claim of this relay's
        # own held rows, so that the two never publish the same rows.
        self._own_rows = asyncio.Lock()
        self._lane = WakeLoop(
            "outbox-hand-over",
            self._publish_handed,
            poll_interval_s=poll_interval_s,
            on_failure=self._failed,
            backoff_max_s=backoff_max_s,
        )

    def wake(self) -> None:
        """Claim and publish what is pending now rather than at the next poll."""
        self._claim_wanted = True
        self._loop.wake()

    def new_claim(self, now: datetime) -> OutboxClaim:
        """What outbox rows written now carry to be held by this relay (see ``hand``)."""
        return OutboxClaim(self._claimant, now + timedelta(seconds=HAND_HOLD_S))

    def hand(self, rows: Sequence[OutboxRow]) -> None:
        """Publish these committed rows, written held by ``new_claim``, now (or, with
        ``hand_limit`` rows waiting already, claim them from the store in turn)."""
        if len(self._handed) + len(rows) > self._hand_limit:
            self._recovering = True
            self._loop.wake()
            return
        if not self._handed:
            self._handed_by = time.monotonic() + HAND_HOLD_S / 2
        self._handed.extend(rows)
        self._lane.wake()

    async def drain(self, *, own: bool = True) -> int:
        """Claim and publish every pending row; answers how many were published.

        With ``own=False``, rows still held for this relay (handed over, or about to
        be) are left to the hand-over.

        A claimed batch is published ``window`` messages at a time, their confirms
        awaited together: the channel sends the messages in the order they were handed
        to it, and the broker keeps that order. The rows up to the first failure count
        as published; that failure is raised (``PublishFailed`` or the store's error)
        and the rest are published again later. A copy that got through meanwhile is
        not pushed twice: the delivery worker skips what its recipient already has.
        """
        published = 0
        while True:
            rows = await self._store.claim_outbox(
                self._claimant, self._batch, now=self._clock(), lease_s=CLAIM_LEASE_S, own=own
            )
            self._forget_handed({row.id for row in rows})
            published += await self._publish(rows)
            if len(rows) < self._batch:
                return published

    def _forget_handed(self, ids: set[int]) -> None:
        self._handed = [row for row in self._handed if row.id not in ids]
        if not self._handed:
            self._handed_by = float("inf")

    async def _publish(self, rows: Sequence[OutboxRow]) -> int:
        """Publish rows this relay holds; mark those confirmed, give back the rest."""
        confirmed: list[int] = []
        try:
            for start in range(0, len(rows), self._window):
                await self._publish_window(rows[start : start + self._window], confirmed)
        finally:
            if confirmed:
                await self._store.mark_published(confirmed, self._clock())
            await self._store.release_outbox(
                self._claimant, [row.id for row in rows[len(confirmed) :]]
            )
        return len(confirmed)

    async def _publish_window(self, rows: Sequence[OutboxRow], confirmed: list[int]) -> None:
        """Publish ``rows`` together, adding to ``confirmed`` the ids of those confirmed
        before the first failure, which is raised."""
        outcomes = await asyncio.gather(
            *(self._publisher.publish(row.message) for row in rows), return_exceptions=True
        )
        for row, outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning(
                    "outbox.publish_failed",
                    outbox_id=row.id,
                    distribution_id=row.message.message_id,
                    case_id=row.message.case_id,
                    error_class=_error_class(outcome),
                )
                raise outcome
            confirmed.append(row.id)

    async def _drain_once(self) -> None:
        """Claim and publish the pending rows, if wanted: when woken for it or a claim
        is due, the rows no other relay holds; at start, after a failure (the rows
        given back then go out in order) and when handed rows waited half their hold,
        this relay's own held rows too, the hand-over lane standing aside meanwhile."""
        now = time.monotonic()
        recovering = self._recovering or now > self._handed_by
        if not (recovering or self._claim_wanted or now >= self._next_claim_at):
            return
        self._claim_wanted = False
        self._next_claim_at = now + self._poll_interval_s
        try:
            if recovering:
                async with self._own_rows:
                    self._recovering = False
                    published = await self.drain(own=True)
                if self._handed:
                    self._lane.wake()  # handed over while the claim ran
            else:
                published = await self.drain(own=False)
        except BaseException:
            self._recovering = True
            raise
        if published:
            log.debug("outbox.published", count=published)

    async def _publish_handed(self) -> None:
        """Publish the rows handed over, unless the relay is recovering: then its claim
        takes them from the store, in order."""
        async with self._own_rows:
            if self._recovering or not self._handed:
                return
            handed = self._handed
            self._forget_handed({row.id for row in handed})
            try:
                published = await self._publish(handed)
            except BaseException:
                self._recovering = True
                self._loop.wake()
                raise
        log.debug("outbox.published", count=published)

    def _failed(self, exc: Exception, retry_in_s: float) -> None:
        log.warning(
            "outbox.relay_backing_off", error_class=_error_class(exc), retry_in_s=retry_in_s
        )

    def start(self) -> None:
        self._loop.start()
        self._lane.start()

    async def stop(self) -> None:
        await self._lane.stop()
        await self._loop.stop()


def _error_class(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, PublishFailed) else None
    return reason or type(exc).__name__
