"""The timer service: fires due timers (SLA deadlines, delivery escalation) once each.

Every ``poll_interval_s``, or at once after ``wake()``, it asks the store to fire what
is due; the store claims the timers, writes the outbox rows their handlers make and
marks them fired in one transaction, so a timer fires once across restarts and
processes. Handlers are pure, chosen by the timer's ``kind``; a kind without a handler
fires with no message and is reported through ``on_error``.
"""

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence

from gateway.model import OutboundMessage, Timer
from gateway.ports import Clock, Store

TimerHandler = Callable[[Timer], Sequence[OutboundMessage]]
ErrorReport = Callable[[str, Mapping[str, object]], None]

BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 10.0


def _ignore(event: str, fields: Mapping[str, object]) -> None:
    return None


class TimerService:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        handlers: Mapping[str, TimerHandler],
        poll_interval_s: float,
        on_fired: Callable[[], None] = lambda: None,
        on_error: ErrorReport = _ignore,
        batch: int = 100,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._store = store
        self._clock = clock
        self._handlers = dict(handlers)
        self._poll_interval_s = poll_interval_s
        self._on_fired = on_fired
        self._on_error = on_error
        self._batch = batch
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look for due timers now rather than at the next poll."""
        self._woken.set()

    def _handle(self, timer: Timer) -> Sequence[OutboundMessage]:
        handler = self._handlers.get(timer.kind)
        if handler is None:
            self._on_error("timer.no_handler", {"kind": timer.kind, "timer_id": timer.timer_id})
            return ()
        return handler(timer)

    async def fire_due(self) -> list[Timer]:
        """Fire every timer due now; answers them. The outbox relay is woken when any fired."""
        fired: list[Timer] = []
        while True:
            batch = await self._store.fire_due_timers(self._clock(), self._batch, self._handle)
            fired.extend(batch)
            if len(batch) < self._batch:
                break
        if fired:
            self._on_fired()
        return fired

    async def run(self) -> None:
        backoff_s = BACKOFF_FIRST_S
        while True:
            self._woken.clear()
            try:
                await self.fire_due()
            except Exception as exc:  # noqa: BLE001 — the loop must outlive any one failure
                self._on_error(
                    "timer.fire_failed",
                    {"error_class": type(exc).__name__, "retry_in_s": backoff_s},
                )
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
                continue
            backoff_s = BACKOFF_FIRST_S
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval_s):
                    await self._woken.wait()

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.create_task(self.run(), name="timer-service")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
