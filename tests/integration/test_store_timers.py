"""Timers in the SQLite store: scheduled, cancelled, fired once — also by two stores at once."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from databases import create_postgres_database, drop_postgres_database
from samples import sealer_for_test, valid_01_case

from gateway.adapters.sql_db import numbered_placeholders
from gateway.adapters.store import SqlStore
from gateway.adapters.store.timers import CANCEL_PENDING
from gateway.model import (
    AcceptedReport,
    AttemptOutcome,
    DeliveryAttempt,
    Destination,
    OutboundMessage,
    Timer,
    TimerEffects,
)
from gateway.timer_service import TimerService

SEALER = sealer_for_test()

T0 = datetime(2026, 11, 30, 6, 45, 10, tzinfo=UTC)
CASE = valid_01_case(received_at=T0)


def timer(n: int, at: datetime, *, subject: str = "s", kind: str = "test.kind") -> Timer:
    return Timer(
        timer_id=f"timer-{n}",
        kind=kind,
        case_id=CASE.case_id,
        subject=subject,
        fire_at=at,
        data={"n": str(n)},
    )


def message_of(t: Timer) -> TimerEffects:
    return TimerEffects(
        outgoing=(
            OutboundMessage(
                destination=Destination.EVENTS,
                routing_key="test.fired.-.-",
                message_id=f"msg-{t.timer_id}",
                case_id=t.case_id,
                sequence=1,
                body=t.data["n"].encode(),
            ),
        )
    )


async def accept(store: SqlStore, timers: Sequence[Timer] = ()) -> None:
    await store.accept_report(
        AcceptedReport(
            source_system="si-lacak-perak",
            source_reference=CASE.source.reference,
            raw=b"{}",
            case=CASE,
            outgoing=(),
            timers=tuple(timers),
        )
    )


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    opened = await SqlStore.connect(store_url, sealer=SEALER)
    await accept(opened)
    try:
        yield opened
    finally:
        await opened.close()


async def fired_ids(store: SqlStore) -> set[str]:
    return {t.timer_id for t, fired_at in await store.timers_of(CASE.case_id) if fired_at}


async def outbox_ids(store: SqlStore) -> list[str]:
    return [row.message.message_id for row in await store.pending_outbox(10_000)]


async def test_only_due_timers_fire_and_write_their_messages(store: SqlStore) -> None:
    await store.schedule_timers([timer(1, T0), timer(2, T0 + timedelta(seconds=5))])

    fired = await store.fire_due_timers(T0 + timedelta(seconds=1), 10, message_of)

    assert [t.timer_id for t in fired] == ["timer-1"]
    assert fired[0].data == {"n": "1"}
    assert fired[0].fire_at == T0
    assert await outbox_ids(store) == ["msg-timer-1"]
    assert await store.fire_due_timers(T0 + timedelta(seconds=1), 10, message_of) == []

    later = await store.fire_due_timers(T0 + timedelta(seconds=5), 10, message_of)
    assert [t.timer_id for t in later] == ["timer-2"]
    assert await outbox_ids(store) == ["msg-timer-1", "msg-timer-2"]


async def test_the_limit_takes_the_earliest_first(store: SqlStore) -> None:
    await store.schedule_timers([timer(n, T0 + timedelta(seconds=10 - n)) for n in range(5)])

    fired = await store.fire_due_timers(T0 + timedelta(minutes=1), 2, message_of)

    assert [t.timer_id for t in fired] == ["timer-4", "timer-3"]


async def test_cancelled_timers_never_fire(store: SqlStore) -> None:
    await store.schedule_timers(
        [timer(1, T0, subject="a"), timer(2, T0, subject="a"), timer(3, T0, subject="b")]
    )

    assert await store.cancel_timers(subject="a") == 2
    assert await store.cancel_timers(subject="a") == 0

    fired = await store.fire_due_timers(T0 + timedelta(seconds=1), 10, message_of)
    assert [t.timer_id for t in fired] == ["timer-3"]
    assert await store.cancel_timers(subject="b") == 0, "a fired timer is not cancelled"


async def test_a_timers_message_copy_is_kept_only_while_it_may_fire(store: SqlStore) -> None:
    """The copy an at-risk timer carries for the failover send is dropped when the timer
    fires or is cancelled: the case's other rows keep the message, not the timer."""
    copy = {"body": '{"nama": "Siti"}'}
    pending, cancelled, due = (
        replace(timer(n, T0 + timedelta(seconds=delay), subject=f"m{n}"), data=copy)
        for n, delay in ((1, 60), (2, 0), (3, 0))
    )
    await store.schedule_timers([pending, cancelled, due])
    await store.cancel_timers(subject="m2")

    fired = await store.fire_due_timers(T0 + timedelta(seconds=1), 10, lambda t: TimerEffects())

    assert [t.data for t in fired] == [copy], "the handler still gets the copy"
    kept = {t.timer_id: t.data for t, _ in await store.timers_of(CASE.case_id)}
    assert kept == {"timer-1": copy, "timer-2": {}, "timer-3": {}}


async def test_the_next_timer_due_is_the_earliest_neither_fired_nor_cancelled(
    store: SqlStore,
) -> None:
    assert await store.next_timer_due() is None
    await store.schedule_timers(
        [
            timer(1, T0 + timedelta(seconds=5)),
            timer(2, T0 + timedelta(seconds=1)),
            timer(3, T0, subject="gone"),
        ]
    )
    await store.cancel_timers(subject="gone")
    assert await store.next_timer_due() == T0 + timedelta(seconds=1)
    await store.fire_due_timers(T0 + timedelta(seconds=1), 10, message_of)
    assert await store.next_timer_due() == T0 + timedelta(seconds=5)


async def test_a_fired_timer_arms_its_follow_on_timers_in_the_same_transaction(
    store: SqlStore,
) -> None:
    await store.schedule_timers([timer(1, T0), timer(2, T0)])

    def arm_next(t: Timer) -> TimerEffects:
        if t.timer_id == "timer-2":
            raise RuntimeError("handler bug")
        return TimerEffects(timers=(timer(10, T0 + timedelta(seconds=3), subject="next"),))

    with pytest.raises(RuntimeError):
        await store.fire_due_timers(T0, 10, arm_next)
    armed = [t.timer_id for t, _ in await store.timers_of(CASE.case_id)]
    assert armed == ["timer-1", "timer-2"], "nothing armed by a round that failed"

    await store.cancel_timers(subject="s")  # timer-2 stays broken
    await store.schedule_timers([timer(3, T0, subject="again")])
    await store.fire_due_timers(T0, 10, arm_next)
    assert await store.next_timer_due() == T0 + timedelta(seconds=3)
    fired = await store.fire_due_timers(T0 + timedelta(seconds=3), 10, message_of)
    assert [t.timer_id for t in fired] == ["timer-10"]


async def test_a_failing_handler_leaves_the_timer_unfired(store: SqlStore) -> None:
    await store.schedule_timers([timer(1, T0), timer(2, T0)])

    def explode(t: Timer) -> TimerEffects:
        if t.timer_id == "timer-2":
            raise RuntimeError("handler bug")
        return message_of(t)

    with pytest.raises(RuntimeError):
        await store.fire_due_timers(T0, 10, explode)

    assert await fired_ids(store) == set()
    assert await outbox_ids(store) == []
    assert len(await store.fire_due_timers(T0, 10, message_of)) == 2


def logged_of(t: Timer) -> TimerEffects:
    row = DeliveryAttempt(
        distribution_id=t.subject,
        case_id=t.case_id,
        recipient="c112",
        attempt=0,
        at=T0,
        outcome=AttemptOutcome.AT_RISK,
    )
    return TimerEffects(outgoing=message_of(t).outgoing, delivery_log=(row,))


async def test_a_handlers_delivery_log_rows_are_written_with_its_firing(
    store: SqlStore,
) -> None:
    await store.schedule_timers([timer(1, T0, subject="d-1"), timer(2, T0, subject="d-2")])

    def explode(t: Timer) -> TimerEffects:
        if t.timer_id == "timer-2":
            raise RuntimeError("handler bug")
        return logged_of(t)

    with pytest.raises(RuntimeError):
        await store.fire_due_timers(T0, 10, explode)
    assert await store.delivery_log(case_id=CASE.case_id) == [], "rolled back with the firing"

    assert len(await store.fire_due_timers(T0, 10, logged_of)) == 2
    logged = await store.delivery_log(case_id=CASE.case_id)
    assert sorted((a.distribution_id, a.outcome) for a in logged) == [
        ("d-1", AttemptOutcome.AT_RISK),
        ("d-2", AttemptOutcome.AT_RISK),
    ]
    assert await outbox_ids(store) == ["msg-timer-1", "msg-timer-2"]


async def test_accepting_a_report_schedules_its_timers(store_url: str) -> None:
    store = await SqlStore.connect(store_url, sealer=SEALER)
    try:
        await accept(store, [timer(1, T0), timer(2, T0 + timedelta(hours=1))])
        await accept(store, [timer(3, T0)])  # the same report again: nothing written

        assert [t.timer_id for t, _ in await store.timers_of(CASE.case_id)] == [
            "timer-1",
            "timer-2",
        ]
    finally:
        await store.close()


async def test_timers_survive_reopening_the_store(store_url: str) -> None:
    first = await SqlStore.connect(store_url, sealer=SEALER)
    await accept(first, [timer(1, T0), timer(2, T0)])
    assert len(await first.fire_due_timers(T0, 1, message_of)) == 1
    await first.close()

    second = await SqlStore.connect(store_url, sealer=SEALER)
    try:
        fired = await second.fire_due_timers(T0, 10, message_of)
        assert [t.timer_id for t in fired] == ["timer-2"]
    finally:
        await second.close()


async def test_two_stores_on_one_database_fire_each_timer_once(store_url: str) -> None:
    stores = [
        await SqlStore.connect(store_url, sealer=SEALER),
        await SqlStore.connect(store_url, sealer=SEALER),
    ]
    try:
        await accept(stores[0], [timer(n, T0 + timedelta(milliseconds=n)) for n in range(300)])
        taken: list[list[str]] = [[], []]

        async def drain(index: int) -> None:
            while True:
                batch = await stores[index].fire_due_timers(T0 + timedelta(hours=1), 7, message_of)
                if not batch:
                    return
                taken[index].extend(t.timer_id for t in batch)
                await asyncio.sleep(0.01)

        await asyncio.gather(drain(0), drain(1))

        assert taken[0], "both stores should have taken part"
        assert taken[1], "both stores should have taken part"
        assert sorted(taken[0] + taken[1]) == sorted(f"timer-{n}" for n in range(300))
        assert len(set(taken[0]) & set(taken[1])) == 0
        assert len(await outbox_ids(stores[1])) == 300
    finally:
        for store in stores:
            await store.close()


async def test_the_timer_service_fires_by_kind_and_wakes_the_relay(store: SqlStore) -> None:
    now = T0 + timedelta(minutes=1)
    await store.schedule_timers(
        [
            timer(1, T0, kind="test.kind"),
            timer(2, T0, kind="unknown.kind"),
            timer(3, now + timedelta(seconds=1), kind="test.kind"),
        ]
    )
    woken: list[int] = []
    rounds: list[list[str]] = []
    errors: list[tuple[str, object]] = []
    service = TimerService(
        store,
        clock=lambda: now,
        handlers={"test.kind": message_of},
        poll_interval_s=60,
        on_fired=lambda: woken.append(1),
        on_round=lambda fired: rounds.append(sorted(t.timer_id for t in fired)),
        on_error=lambda event, fields: errors.append((event, fields["kind"])),
        batch=1,
    )

    fired = await service.fire_due()

    assert sorted(t.timer_id for t in fired) == ["timer-1", "timer-2"]
    assert woken == [1]
    assert errors == [("timer.no_handler", "unknown.kind")]
    assert await outbox_ids(store) == ["msg-timer-1"]
    assert await service.fire_due() == []
    assert woken == [1], "nothing fired, nothing to publish"
    assert rounds == [["timer-1", "timer-2"], []], "told of every round, after its commits"


async def test_the_timer_service_fires_a_timer_when_it_falls_due_not_at_its_poll(
    store: SqlStore,
) -> None:
    def now() -> datetime:
        return datetime.now(UTC)

    service = TimerService(store, clock=now, handlers={"test.kind": message_of}, poll_interval_s=60)
    await store.schedule_timers([timer(1, now() + timedelta(seconds=0.3))])
    service.start()
    try:
        async with asyncio.timeout(5):
            while not await fired_ids(store):  # noqa: ASYNC110 - the store has no signal
                await asyncio.sleep(0.01)
    finally:
        await service.stop()
    [(fired, fired_at)] = await store.timers_of(CASE.case_id)
    assert fired_at is not None
    assert fired_at >= fired.fire_at, "not before it fell due"


async def test_timers_falling_due_close_together_fire_in_one_round(store: SqlStore) -> None:
    def now() -> datetime:
        return datetime.now(UTC)

    rounds: list[list[str]] = []
    service = TimerService(
        store,
        clock=now,
        handlers={"test.kind": message_of},
        poll_interval_s=60,
        on_round=lambda fired: rounds.append(sorted(t.timer_id for t in fired)),
        gather_s=0.2,
    )
    start = now()
    await store.schedule_timers(
        [timer(1, start + timedelta(seconds=0.3)), timer(2, start + timedelta(seconds=0.4))]
    )
    service.start()
    try:
        # the rounds, not the store: a reader may see the commit before the round ends
        async with asyncio.timeout(5):
            while sum(map(len, rounds)) < 2:  # noqa: ASYNC110 - on_round is the signal
                await asyncio.sleep(0.01)
    finally:
        await service.stop()
    assert [r for r in rounds if r] == [["timer-1", "timer-2"]]


async def test_a_woken_timer_service_fires_without_waiting_for_its_poll(
    store: SqlStore,
) -> None:
    now = [T0]
    service = TimerService(
        store, clock=lambda: now[0], handlers={"test.kind": message_of}, poll_interval_s=60
    )
    service.start()
    try:
        await asyncio.sleep(0.05)
        await store.schedule_timers([timer(1, T0 + timedelta(seconds=1))])
        now[0] = T0 + timedelta(seconds=2)
        service.wake()
        async with asyncio.timeout(5):
            while not await fired_ids(store):  # noqa: ASYNC110 - the store has no signal
                await asyncio.sleep(0.01)
    finally:
        await service.stop()
    assert await fired_ids(store) == {"timer-1"}


async def test_postgresql_cancels_by_subject_without_walking_every_pending_timer() -> None:
    """The plan PostgreSQL caches for the cancel (made before the table has statistics)
    looks the subject up, rather than scanning every pending timer for it."""
    url = await create_postgres_database()
    try:
        store = await SqlStore.connect(url, sealer=SEALER)
        try:
            await accept(store)
            await store.schedule_timers(
                [timer(n, T0 + timedelta(seconds=n), subject=f"s{n}") for n in range(2000)]
            )
        finally:
            await store.close()
        pg = await asyncpg.connect(url)
        try:
            await pg.execute(
                f"PREPARE cancel(text, text) AS {numbered_placeholders(CANCEL_PENDING)}"
            )
            for _ in range(6):  # past the custom plans PostgreSQL makes before a generic one
                await pg.execute("EXECUTE cancel('2026-11-30T07:00:00.000000+00:00', 'none')")
            plan = "\n".join(
                row[0]
                for row in await pg.fetch(
                    "EXPLAIN EXECUTE cancel('2026-11-30T07:00:00.000000+00:00', 's7')"
                )
            )
        finally:
            await pg.close()
    finally:
        await drop_postgres_database(url)
    assert "timers_pending_subject" in plan, plan
