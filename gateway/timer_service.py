"""The timer service: fires due timers (SLA deadlines, delivery escalation) once each.

It asks the store to fire what is due ``gather_s`` after the earliest pending timer
falls due, at once after ``wake()``, and at least every ``poll_interval_s`` (for timers
that other processes arm). Firing timers as they fall due, not a poll's worth at a time,
keeps each round small and the event loop free for the intake; gathering those that fall
due within ``gather_s`` of one another saves a transaction for each. The store claims
the timers, writes the outbox rows their handlers make and marks them fired in one
transaction, so a timer fires once across restarts and processes. Handlers are pure,
chosen by the timer's ``kind``; a kind without a handler fires with no message and is
reported through ``on_error``. After every round, committed, ``on_round`` gets what
fired in it (often nothing).
"""

from collections.abc import Callable, Mapping, Sequence

from gateway.model import Timer, TimerEffects
from gateway.ports import Clock, Store
from gateway.wake_loop import WakeLoop

TimerHandler = Callable[[Timer], TimerEffects]
# How late a timer may fire so that those falling due close together share a round:
# nothing beside SOP windows of 20 s and more, or a 5-minute deadline to 112.
GATHER_S = 0.1
ErrorReport = Callable[[str, Mapping[str, object]], None]


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
        on_round: Callable[[Sequence[Timer]], None] = lambda fired: None,
        on_error: ErrorReport = _ignore,
        batch: int = 100,
        gather_s: float = GATHER_S,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._gather_s = gather_s
        self._store = store
        self._clock = clock
        self._handlers = dict(handlers)
        self._on_fired = on_fired
        self._on_round = on_round
        self._on_error = on_error
        self._batch = batch
        self._loop = WakeLoop(
            "timer-service",
            self.fire_due,
            poll_interval_s=poll_interval_s,
            on_failure=self._failed,
        )

    def _handle(self, timer: Timer) -> TimerEffects:
        handler = self._handlers.get(timer.kind)
        if handler is None:
            self._on_error("timer.no_handler", {"kind": timer.kind, "timer_id": timer.timer_id})
            return TimerEffects()
        return handler(timer)

    async def fire_due(self) -> list[Timer]:
        """Fire every timer due now; answers them. The outbox relay is woken when any fired,
        and the service when the next timer falls due."""
        fired: list[Timer] = []
        while True:
            batch = await self._store.fire_due_timers(self._clock(), self._batch, self._handle)
            fired.extend(batch)
            if len(batch) < self._batch:
                break
        if fired:
            self._on_fired()
        self._on_round(fired)
        due = await self._store.next_timer_due()
        if due is not None:
            self._loop.wake_in((due - self._clock()).total_seconds() + self._gather_s)
        return fired

    def _failed(self, exc: Exception, retry_in_s: float) -> None:
        self._on_error(
            "timer.fire_failed", {"error_class": type(exc).__name__, "retry_in_s": retry_in_s}
        )

    def wake(self) -> None:
        """Look for due timers now rather than at the next poll."""
        self._loop.wake()

    async def run(self) -> None:
        await self._loop.run()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
