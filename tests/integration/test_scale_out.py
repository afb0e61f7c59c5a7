"""Scale-out on PostgreSQL: one API process and two delivery workers, each a real
``gateway serve`` process, sharing the broker and one database."""

import asyncio
import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from databases import create_postgres_database, drop_postgres_database
from delivery_support import EventTap, ServeProcess, unique_report
from gateway_support import delete_namespace, eventually, serve_env, settings_for_test
from prometheus_client.parser import text_string_to_metric_families
from queue_support import unused_port
from samples import new_secret

from gateway import signing
from gateway.adapters.simulator_112 import create_simulator_app

pytestmark = pytest.mark.integration

REPORTS = 2000
NEEDS_112 = "valid-01-app-basic.json"
NO_112 = "valid-03-hotline-anonymous-no-medis.json"  # left alone, it breaches SOP step 1
EVERY_NTH_WITHOUT_112 = 4
IN_FLIGHT = 16
SLA_SCALE = 4  # step 1 (20 s) is due 5 s after intake


async def post_reports(url: str, secret: str, count: int) -> dict[str, str]:
    """Answers the accepted case ids, each with the sample it was made from."""
    accepted: dict[str, str] = {}
    slots = asyncio.Semaphore(IN_FLIGHT)
    async with aiohttp.ClientSession() as session:

        async def post_one(n: int) -> None:
            sample = NO_112 if n % EVERY_NTH_WITHOUT_112 == 0 else NEEDS_112
            body = unique_report(sample)
            headers = signing.webhook_headers([secret], str(uuid.uuid4()), body, datetime.now(UTC))
            headers["content-type"] = "application/json"
            async with (
                slots,
                session.post(f"{url}/v1/reports/si-lacak-perak", data=body, headers=headers) as r,
            ):
                answer = await r.json(content_type=None)
                assert r.status == 202, answer
                accepted[answer["case_id"]] = sample

        await asyncio.gather(*(post_one(n) for n in range(count)))
    return accepted


async def delivered_by(worker: ServeProcess) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{worker.url}/metrics") as r:
        text = await r.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "gateway_deliveries"
        for sample in family.samples
        if sample.name == "gateway_deliveries_total" and sample.labels.get("outcome") == "delivered"
    )


@pytest.mark.timeout(300)
async def test_two_workers_and_one_api_process_lose_nothing_and_fire_each_sla_event_once(
    tmp_path: Path,
) -> None:
    database_url = await create_postgres_database()
    c112_secret, inbound_secret = new_secret(), new_secret()
    sim = TestClient(TestServer(create_simulator_app(secret=c112_secret)))
    await sim.start_server()
    settings = settings_for_test(tmp_path, database_url=database_url)
    env = serve_env(
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_NAMESPACE=settings.namespace,
        GATEWAY_RETRY_DELAYS_S=json.dumps(settings.retry_delays_s),  # what the teardown deletes
        GATEWAY_INBOUND_SECRET=inbound_secret,
        GATEWAY_C112_SECRET=c112_secret,
        GATEWAY_C112_URL=str(sim.make_url("/v1/messages")),
        GATEWAY_SLA_SCALE=str(SLA_SCALE),
        GATEWAY_RELAY_POLL_S="0.2",
        GATEWAY_LOG_LEVEL="warning",
        GATEWAY_RATE_LIMIT_BURST="100000",
    )
    processes = [
        ServeProcess(
            {**env, "GATEWAY_HTTP_PORT": str(unused_port())}, tmp_path / f"{role}.log", role
        )
        for role in ("api", "worker", "worker")
    ]
    api, workers = processes[0], processes[1:]
    try:
        async with aiohttp.ClientSession() as session:
            for process in processes:
                await process.start(session)
        async with EventTap(settings, "sla.#") as sla, EventTap(settings, "case.#") as cases:
            started = time.monotonic()
            accepted = await post_reports(api.url, inbound_secret, REPORTS)
            posted_s = time.monotonic() - started
            to_112 = {c for c, sample in accepted.items() if sample == NEEDS_112}
            left_alone = set(accepted) - to_112

            async def all_delivered() -> bool:
                response = await sim.get("/_sim/messages")
                messages: list[dict[str, Any]] = await response.json()
                return len({m["body"]["case_id"] for m in messages if m["answered"] == 202}) >= (
                    len(to_112)
                )

            await eventually(all_delivered, 120, "every 112 case delivered to 112")
            delivered_s = time.monotonic() - started

            async def every_case_published_and_step_1_breached() -> bool:
                breached = {
                    e["case_id"]
                    for _, e in sla.events
                    if e["content"]["event"] == "breached" and e["content"]["step"] == 1
                }
                return breached >= left_alone and {e["case_id"] for _, e in cases.events} >= set(
                    accepted
                )

            await eventually(
                every_case_published_and_step_1_breached, 60, "every case out, step 1 breached"
            )
            await asyncio.sleep(1)  # a duplicate would be on its way by now
            fired = Counter(
                (e["case_id"], e["content"]["step"], e["content"]["event"]) for _, e in sla.events
            )

        response = await sim.get("/_sim/messages")
        messages = await response.json()
        ids_by_case: dict[str, set[str]] = {}
        for message in messages:
            ids_by_case.setdefault(message["body"]["case_id"], set()).add(
                message["headers"]["webhook-id"]
            )
        assert len(accepted) == REPORTS
        assert set(ids_by_case) == to_112, "lost or unknown cases"
        assert all(len(ids) == 1 for ids in ids_by_case.values()), "a case sent under two ids"
        assert [key for key, n in fired.items() if n > 1] == [], "an SLA event fired twice"
        shares = [await delivered_by(worker) for worker in workers]
        assert all(share > 0 for share in shares), f"a worker did no work: {shares}"
        assert sum(shares) >= len(to_112)
        print(
            f"SCALE-OUT reports={REPORTS} to_112={len(to_112)} posted_s={posted_s:.1f} "
            f"delivered_s={delivered_s:.1f} delivered_by_worker={shares} sla_events={len(fired)}"
        )
    finally:
        for process in processes:
            await process.stop()
        await sim.close()
        await delete_namespace(settings)
        await drop_postgres_database(database_url)
        for process in processes:
            log = process.log_path.read_text(encoding="utf-8", errors="replace")
            assert '"level": "error"' not in log, json.dumps(log[-2000:])
