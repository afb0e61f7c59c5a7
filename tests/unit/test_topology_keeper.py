import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from structlog.testing import capture_logs

from gateway.queue.publisher import PublishFailed
from gateway.queue.topology import build_topology
from gateway.queue.topology_keeper import TopologyKeeper

TOPOLOGY = build_topology(
    "ns", recipients=("c112", "c112_failover"), ladder=(30, 120), delivery_limit=5
)


@pytest.mark.parametrize(
    ("exchange", "routing_key", "bound"),
    [
        ("ns.deliver", "c112", True),
        ("ns.deliver", "c112_failover", True),
        ("ns.deliver", "retry.30s.c112", True),
        ("ns.deliver", "sub-01jdxk7q2m8w3v5t9r6n4b2c1z", False),  # a partner's, not ours
        ("ns.retry", "retry.30s.c112", True),
        ("ns.retry", "retry.120s.c112_failover", True),
        ("ns.retry", "retry.7s.c112", False),  # no such step on the ladder
        ("ns.dlx", "c112", True),  # fanout: any key
        ("ns.control", "topology.restored", False),  # each process binds its own queue
        ("ns.unroutable", "case.created.pinang.high", True),
        ("ns.events", "case.created.pinang.high", False),  # subscriptions bind it, not we
        ("other.deliver", "c112", False),
    ],
)
def test_binds_knows_the_routes_of_its_own_queues(
    exchange: str, routing_key: str, bound: bool
) -> None:
    assert TOPOLOGY.binds(exchange, routing_key) is bound


@pytest.mark.parametrize(
    ("exchange", "declared"),
    [("ns.deliver", True), ("ns.retry", True), ("ns.events", True), ("ns.partner", False)],
)
def test_it_knows_its_own_exchanges(exchange: str, declared: bool) -> None:
    assert TOPOLOGY.declares_exchange(exchange) is declared


class Declares:
    """The broker's side: each declare answers the consumer counts it is given."""

    def __init__(self, consumer_counts: dict[str, int]) -> None:
        self.consumer_counts = consumer_counts
        self.count = 0
        self.announced = 0
        self.made = asyncio.Event()

    async def __call__(self) -> dict[str, int]:
        self.count += 1
        self.made.set()
        return self.consumer_counts


@dataclass
class FakeConsumer:
    queue_name: str
    consuming: bool = True
    restarts: int = 0

    async def restart(self) -> None:
        self.restarts += 1


async def _next_declare(declares: Declares) -> None:
    async with asyncio.timeout(2):
        await declares.made.wait()
    declares.made.clear()
    await asyncio.sleep(0.05)  # the restarts after it


C112, FAILOVER, PARKING = "ns.deliver.c112", "ns.deliver.c112_failover", "ns.parking"


@asynccontextmanager
async def running_keeper(
    consumer_counts: dict[str, int], *, check_s: float
) -> AsyncIterator[tuple[TopologyKeeper, Declares, list[FakeConsumer]]]:
    """A keeper of c112's consumer, a failover consumer not consuming, and parking's."""
    declares = Declares(consumer_counts)
    consumers = [FakeConsumer(C112), FakeConsumer(FAILOVER, consuming=False), FakeConsumer(PARKING)]
    keeper: TopologyKeeper

    async def announce() -> None:
        """The control exchange: every process hears it, this one too."""
        declares.announced += 1
        keeper.restored()

    keeper = TopologyKeeper(TOPOLOGY, declares, lambda: consumers, announce, check_s=check_s)
    keeper.start()
    try:
        yield keeper, declares, consumers
    finally:
        await keeper.stop()


async def test_an_unroutable_publish_of_ours_declares_again_and_restarts_its_consumers() -> None:
    counts = {C112: 1, FAILOVER: 1, PARKING: 1}
    async with running_keeper(counts, check_s=3600) as (keeper, declares, consumers):
        await _next_declare(declares)  # the first round
        assert [c.restarts for c in consumers] == [0, 0, 0], "all counted: nothing to restart"
        with capture_logs() as logs:
            for reason, exchange, key in [
                ("nacked", "ns.deliver", "c112"),
                ("unroutable", "ns.deliver", "sub-01jdxk7q2m8w3v5t9r6n4b2c1z"),
            ]:
                keeper.publish_failed(PublishFailed(reason, exchange, key))
            await asyncio.sleep(0.1)
            assert declares.count == 1, "neither is a missing queue of ours"

            for _ in range(3):  # the relay and two workers, before the keeper's turn
                keeper.publish_failed(PublishFailed("unroutable", "ns.deliver", "c112"))
            await _next_declare(declares)  # declared and announced
            await asyncio.sleep(0.1)  # the announcement heard here too: consume again
        assert declares.announced == 1
        assert [c.restarts for c in consumers] == [1, 0, 1], "each consuming one, once"
        alerts = [e for e in logs if e["event"] == "ops_alert"]
        assert [(a["alert"], a["routing_key"]) for a in alerts] == [
            ("broker.topology_missing", "c112")
        ]
        assert any(e["event"] == "broker.topology_declared_again" for e in logs)

        keeper.publish_failed(PublishFailed("unroutable", "ns.retry", "retry.30s.c112"))
        await _next_declare(declares)
        assert declares.announced == 2, "a later incident is handled again"


async def test_a_notice_from_another_process_restarts_every_consuming_consumer() -> None:
    counts = {C112: 1, FAILOVER: 1, PARKING: 1}
    async with running_keeper(counts, check_s=3600) as (keeper, declares, consumers):
        await _next_declare(declares)  # the first round
        keeper.restored()
        await _next_declare(declares)
    assert declares.announced == 0, "only the process that restored it announces"
    assert [c.restarts for c in consumers] == [1, 0, 1]


async def test_every_check_interval_it_declares_and_restarts_a_consumer_the_broker_lost() -> None:
    counts = {C112: 0, FAILOVER: 0, PARKING: 2}
    async with running_keeper(counts, check_s=0.05) as (_, declares, consumers):
        for _ in range(3):
            await _next_declare(declares)
    assert consumers[0].restarts >= 3, "c112's queue has no consumer: ours is gone"
    assert consumers[1].restarts == 0, "not meant to consume (its breaker is open, say)"
    assert consumers[2].restarts == 0


async def test_a_publish_to_an_exchange_of_ours_the_broker_lacks_declares_again() -> None:
    counts = {C112: 1, FAILOVER: 1, PARKING: 1}
    async with running_keeper(counts, check_s=3600) as (keeper, declares, consumers):
        await _next_declare(declares)
        with capture_logs() as logs:
            keeper.publish_failed(PublishFailed("exchange_missing", "ns.partner", "polres"))
            await asyncio.sleep(0.1)
            assert declares.count == 1, "the partner exchange is the partner router's"

            keeper.publish_failed(PublishFailed("exchange_missing", "ns.deliver", "c112"))
            await _next_declare(declares)
            await asyncio.sleep(0.1)
        assert declares.announced == 1
        assert [c.restarts for c in consumers] == [1, 0, 1]
        alerts = [e for e in logs if e["event"] == "ops_alert"]
        assert [(a["alert"], a["exchange"]) for a in alerts] == [
            ("broker.topology_missing", "ns.deliver")
        ]
