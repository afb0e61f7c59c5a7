"""A background loop that works now, when woken, when it asked to be, and at least
every poll interval.

It outlives any one failure: it reports the failure, backs off (doubling, capped)
and tries again. The outbox relay and the timer service both run on it.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 10.0

FailureReport = Callable[[Exception, float], None]


class WakeLoop:
    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[object]],
        *,
        poll_interval_s: float,
        on_failure: FailureReport,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self._name = name
        self._work = work
        self._poll_interval_s = poll_interval_s
        self._on_failure = on_failure
        self._backoff_max_s = backoff_max_s
        self._woken = asyncio.Event()
        self._wake_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Work now rather than at the next poll."""
        self._woken.set()

    def wake_in(self, delay_s: float) -> None:
        """Called by the work: work again after ``delay_s`` if that comes before the next
        poll (the earliest such request of a round wins)."""
        at = asyncio.get_running_loop().time() + max(delay_s, 0.0)
        if self._wake_at is None or at < self._wake_at:
            self._wake_at = at

    async def run(self) -> None:
        """Work, then wait for a wake-up, the time the work asked for, or the poll
        interval; forever."""
        backoff_s = BACKOFF_FIRST_S
        loop = asyncio.get_running_loop()
        this_task = asyncio.current_task()
        while True:
            self._woken.clear()
            self._wake_at = None
            failure: Exception | None = None
            try:
                await self._work()
            except Exception as exc:  # noqa: BLE001 — the loop must outlive any one failure
                failure = exc
            if this_task is not None and this_task.cancelling():
                # the work swallowed a cancellation (some broker client calls return or
                # fail otherwise when cancelled): honour it, or stop() waits forever
                raise asyncio.CancelledError
            if failure is not None:
                self._on_failure(failure, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self._backoff_max_s)
                continue
            backoff_s = BACKOFF_FIRST_S
            wait_s = self._poll_interval_s
            if self._wake_at is not None:
                wait_s = min(wait_s, self._wake_at - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait_s, 0.0)):
                    await self._woken.wait()

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.create_task(self.run(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            stopping = asyncio.current_task()
            if stopping is not None and stopping.cancelling():
                raise  # the caller is being cancelled too, not only the loop
