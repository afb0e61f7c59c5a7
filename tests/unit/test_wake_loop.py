"""The wake loop: works when woken, when its work asks to, and at least every poll."""

import asyncio

from gateway.wake_loop import WakeLoop


def never_fails(exc: Exception, retry_in_s: float) -> None:
    raise AssertionError(f"the work failed: {exc!r}")


async def test_a_round_that_asks_for_another_gets_it_before_the_poll() -> None:
    rounds: list[float] = []
    loop: WakeLoop

    async def work() -> None:
        rounds.append(asyncio.get_running_loop().time())
        if len(rounds) == 1:
            loop.wake_in(5.0)
            loop.wake_in(0.05)  # the earlier request wins
            loop.wake_in(3.0)

    loop = WakeLoop("test", work, poll_interval_s=60, on_failure=never_fails)
    loop.start()
    try:
        async with asyncio.timeout(2):
            while len(rounds) < 2:  # noqa: ASYNC110 - counting rounds is the point
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
    finally:
        await loop.stop()
    assert len(rounds) == 2, "the second round asked for nothing: the loop waits for its poll"
    assert rounds[1] - rounds[0] >= 0.05


async def test_a_wake_up_still_cuts_a_requested_wait_short() -> None:
    rounds: list[int] = []
    loop: WakeLoop

    async def work() -> None:
        rounds.append(1)
        loop.wake_in(30.0)

    loop = WakeLoop("test", work, poll_interval_s=60, on_failure=never_fails)
    loop.start()
    try:
        await asyncio.sleep(0.05)
        loop.wake()
        async with asyncio.timeout(2):
            while len(rounds) < 2:  # noqa: ASYNC110 - counting rounds is the point
                await asyncio.sleep(0.01)
    finally:
        await loop.stop()


async def test_it_stops_even_when_its_work_swallowed_the_cancellation() -> None:
    """Some broker client calls return normally when cancelled; the loop must not then
    wait for its next round, or stopping the gateway would hang."""
    working = asyncio.Event()

    async def work() -> None:
        working.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return

    loop = WakeLoop("test", work, poll_interval_s=60, on_failure=never_fails)
    loop.start()
    await working.wait()
    stopping = asyncio.create_task(loop.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert stopping in done, "stop() hangs: the loop went on to wait for its next round"


async def test_stopping_it_does_not_swallow_the_callers_cancellation() -> None:
    async def work() -> None:
        await asyncio.sleep(10)

    loop = WakeLoop("test", work, poll_interval_s=60, on_failure=never_fails)
    loop.start()
    await asyncio.sleep(0)
    stopping = asyncio.create_task(loop.stop())
    await asyncio.sleep(0)  # stop() has cancelled the loop and awaits it
    stopping.cancel()
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert stopping in done
    assert stopping.cancelled()
