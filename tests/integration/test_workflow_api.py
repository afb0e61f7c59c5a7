"""SOP 357 through the whole gateway: staff events, SLA timers over real time (compressed
with GATEWAY_SLA_SCALE), restarts, two processes on one file, and the compliance report."""

import asyncio
import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from gateway_support import AMQP_URL, RunningGateway, running_gateway
from samples import fixture_json, sealer_for_test

from gateway.adapters.sealing import row_aad
from gateway.queue.connection import AmqpConnection

pytestmark = pytest.mark.integration

SEALER = sealer_for_test()

SATGAS = "satgas-token-0123456789abcdef"
HEAD = "head-token-0123456789abcdef01"
OPS = "ops-token-0123456789abcdef0123"
TOKENS: dict[str, Any] = {"satgas_token": SATGAS, "head_token": HEAD, "ops_token": OPS}
LONE = "valid-03-hotline-anonymous-no-medis.json"  # needs no other agency: starts at SOP 1
AGENCY = "valid-01-app-basic.json"  # needs the police: starts at SOP 6


def report(name: str) -> bytes:
    body = fixture_json(name)
    body["id_laporan"] = f"SLP-{uuid.uuid4().hex[:12]}"
    return json.dumps(body).encode()


async def new_case(gw: RunningGateway, name: str = LONE) -> str:
    status, body = await gw.post_report(report(name))
    assert status == 202, body
    case_id: str = body["case_id"]
    return case_id


async def send(
    gw: RunningGateway, case_id: str, kind: str, *, token: str = SATGAS, **fields: Any
) -> tuple[int, Any]:
    role = "head" if token == HEAD else "satgas"
    body = {"type": kind, "by": {"role": role, "id": "staff-7"}, **fields}
    response = await gw.client.post(
        f"/v1/cases/{case_id}/events",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status, await response.json(content_type=None)


async def ok(gw: RunningGateway, case_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    status, body = await send(gw, case_id, kind, **fields)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def get_case(gw: RunningGateway, case_id: str, token: str = SATGAS) -> tuple[int, Any]:
    response = await gw.client.get(
        f"/v1/cases/{case_id}", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status, await response.json(content_type=None)


def sla_rows(database: Path, case_id: str | None = None) -> list[tuple[str, int, str]]:
    """(case, step, warning|breached) of every SLA event the store wrote, in outbox order."""
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT case_id, message_id, body FROM outbox WHERE routing_key LIKE 'sla.%' "
            "ORDER BY id"
        ).fetchall()
    found = []
    for row_case, message_id, sealed in rows:
        body = SEALER.open(sealed, row_aad("outbox", "body", message_id))
        content = json.loads(body)["content"]
        if case_id is None or row_case == case_id:
            found.append((row_case, content["step"], content["event"]))
    return found


def database_of(gw: RunningGateway) -> Path:
    return gw.settings.sqlite_path()


async def wait_for_sla(
    database: Path, case_id: str, count: int, timeout_s: float
) -> list[tuple[str, int, str]]:
    async with asyncio.timeout(timeout_s):
        while len(rows := sla_rows(database, case_id)) < count:  # noqa: ASYNC110 - SQLite file
            await asyncio.sleep(0.05)
    return rows


@asynccontextmanager
async def sla_queue(gw: RunningGateway) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue bound to the namespace's events exchange for ``sla.#``."""
    connection = AmqpConnection(AMQP_URL, name="test-sla-listener")
    await connection.connect()
    try:
        async with connection.connection.channel() as channel:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(f"{gw.settings.namespace}.events", routing_key="sla.#")
            yield queue
    finally:
        await connection.close()


async def drain(queue: aio_pika.abc.AbstractQueue) -> list[tuple[str, dict[str, Any]]]:
    taken = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        taken.append((message.routing_key or "", json.loads(message.body)))
    return taken


async def sim_envelopes(
    gw: RunningGateway, case_id: str, count: int, timeout_s: float = 15
) -> dict[str, dict[str, Any]]:
    """What 112 received for a case, by distribution id (a retried push counts once)."""
    async with asyncio.timeout(timeout_s):
        while True:
            found = {
                m["body"]["distribution_id"]: m["body"]
                for m in await gw.sim_messages()
                if isinstance(m.get("body"), dict) and m["body"].get("case_id") == case_id
            }
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


# ---- a case left alone, a case handled in time ----


async def test_a_case_left_alone_breaches_step_2_then_step_3_once_each(tmp_path: Path) -> None:
    # scale 100: SOP 1 is due at 0.2 s, SOP 2 at 0.5 s, SOP 3 at 0.8 s, SOP 4 at 6.8 s
    async with (
        running_gateway(tmp_path, sla_scale=100, sla_timer_poll_s=0.05, **TOKENS) as gw,
        sla_queue(gw) as queue,
    ):
        case_id = await new_case(gw)
        await wait_for_sla(database_of(gw), case_id, 6, timeout_s=10)
        await asyncio.sleep(1.0)  # time for any second firing to show up

        rows = sla_rows(database_of(gw), case_id)
        assert Counter((step, event) for _, step, event in rows) == {
            (1, "warning"): 1,
            (1, "breached"): 1,
            (2, "warning"): 1,
            (2, "breached"): 1,
            (3, "warning"): 1,
            (3, "breached"): 1,
        }
        breaches = [step for _, step, event in rows if event == "breached"]
        assert breaches == [1, 2, 3]

        published: list[tuple[str, dict[str, Any]]] = []
        async with asyncio.timeout(10):
            while len(published) < 6:
                published += await drain(queue)
                await asyncio.sleep(0.05)
        status, view = await get_case(gw, case_id)
        risk = view["case"]["risk"]["level"]
        assert [key for key, _ in published] == [
            f"sla.{event}.karang-tengah.{risk}"
            for _ in (1, 2, 3)
            for event in ("warning", "breached")
        ]
        envelope = next(body for key, body in published if key.startswith("sla.breached."))
        assert envelope["schema"] == "sla-event/1"
        assert envelope["kind"] == "update"
        assert set(envelope["content"]) <= {
            "case_id",
            "event",
            "step",
            "activity",
            "entered_at",
            "due_at",
            "kecamatan",
            "risk_level",
        }

        assert status == 200
        steps = {s["step"]: s for s in view["steps"]}
        assert steps[2]["status"] == "breached"
        assert steps[2]["breached_at"] is not None
        assert steps[3]["warned_at"] is not None
        assert view["state"] == "received", "a breach never moves or blocks the case"

        # the work goes on: the late step can still be done
        after = await ok(gw, case_id, "reported_to_head")
        assert after["state"] == "awaiting_assignment"


async def test_a_case_handled_in_time_breaches_nothing(tmp_path: Path) -> None:
    # scale 10: SOP 1 is due at 2 s, SOP 2 and 3 get 3 s each
    async with running_gateway(tmp_path, sla_scale=10, sla_timer_poll_s=0.05, **TOKENS) as gw:
        case_id = await new_case(gw)
        await ok(gw, case_id, "acknowledged")
        await ok(gw, case_id, "reported_to_head")
        status, _ = await send(gw, case_id, "team_assigned", token=HEAD, team_id="tim-3")
        assert status == 200
        await ok(gw, case_id, "team_departed")
        await ok(gw, case_id, "follow_up_documented", documentation=["doc-1"])
        closed = await ok(gw, case_id, "reported_to_head_final")
        assert closed["state"] == "closed"
        assert {s["status"] for s in closed["steps"]} == {"met"}

        await asyncio.sleep(2.5)  # past where SOP 1 would have been due
        assert sla_rows(database_of(gw), case_id) == []
        store = await gw.store()
        try:
            assert all(fired is None for _, fired in await store.timers_of(case_id))
        finally:
            await store.close()


async def test_status_and_handling_reports_reach_112_in_sequence(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, sla_scale=10, sla_timer_poll_s=0.05, **TOKENS) as gw:
        case_id = await new_case(gw, AGENCY)
        view = (await get_case(gw, case_id))[1]
        assert view["state"] == "multi_agency_coordination"
        assert [s["step"] for s in view["steps"]] == [6]

        report_body = {
            "victim_status": "safe",
            "services": ["penjangkauan"],
            "agencies": [{"agency": "police", "role": "supporting", "status": "en_route"}],
        }
        await ok(gw, case_id, "status_report", report=report_body)
        await ok(gw, case_id, "reported_to_head_final")
        status, closed = await send(
            gw,
            case_id,
            "handling_report",
            token=HEAD,
            report={"victim_status": "sheltered", "services": ["kesehatan"]},
        )
        assert status == 200, closed
        assert closed["state"] == "closed"

        ours = sorted(
            (await sim_envelopes(gw, case_id, 3)).values(), key=lambda e: int(e["sequence"])
        )
        assert [(e["schema"], e["sequence"]) for e in ours] == [
            ("kdrt-case/1", 1),
            ("status-report/1", 2),
            ("status-report/1", 3),
        ]
        push, status_report, handling = ours
        assert status_report["references"] == [push["distribution_id"]]
        assert handling["references"] == [push["distribution_id"], status_report["distribution_id"]]
        assert status_report["content"]["type"] == "status"
        assert status_report["content"]["case_state"] == "reporting_to_head"
        assert handling["content"]["type"] == "handling"
        assert handling["content"]["version"] == "final"
        assert handling["content"]["prepared_by"] == {"role": "kepala-uptd-ppa"}


async def test_needs_other_agencies_later_routes_the_case_to_112(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, sla_scale=10, sla_timer_poll_s=0.05, **TOKENS) as gw:
        case_id = await new_case(gw)
        await ok(gw, case_id, "acknowledged")
        after = await ok(
            gw, case_id, "needs_other_agencies", agencies=["police", "health"], reason="armed"
        )
        assert after["state"] == "multi_agency_coordination"
        assert after["coordination"] is True

        (envelope,) = (await sim_envelopes(gw, case_id, 1)).values()
        assert envelope["schema"] == "kdrt-case/1"
        assert envelope["sequence"] == 1
        assert envelope["content"]["requested_agencies"] == ["police", "health"]
        sent = datetime.fromisoformat(envelope["sent_at"])
        deadline = datetime.fromisoformat(envelope["deadline_at"]) - sent
        assert deadline == timedelta(minutes=5) / 10, "SOP 6's 5 minutes, scaled like the SOP"


# ---- the API's refusals and views ----


async def test_refusals_name_what_is_wrong(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, sla_scale=2, **TOKENS) as gw:
        case_id = await new_case(gw)

        status, problem = await send(gw, case_id, "team_departed")
        assert status == 409
        assert problem["state"] == "received"
        assert set(problem["allowed_events"]) == {
            "acknowledged",
            "reported_to_head",
            "needs_other_agencies",
            "cancelled",
            "duplicate_of",
        }

        status, problem = await send(gw, case_id, "acknowledged", token=HEAD)
        assert status == 403

        status, problem = await send(gw, case_id, "acknowledged", token=OPS)
        assert status == 403

        response = await gw.client.post(f"/v1/cases/{case_id}/events", json={"type": "closed"})
        assert response.status == 401

        status, problem = await send(gw, case_id, "team_assigned", token=HEAD)
        assert status == 422
        assert [e["pointer"] for e in problem["errors"]] == ["/team_id"]

        status, problem = await send(gw, case_id, "nonsense")
        assert status == 422
        assert problem["errors"][0]["pointer"] == "/type"

        missing = "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1Z"
        status, _ = await send(gw, missing, "acknowledged")
        assert status == 404
        status, problem = await send(gw, case_id, "duplicate_of", token=HEAD, duplicate_of=missing)
        assert status == 422

        other = await new_case(gw)
        status, dup = await send(gw, other, "duplicate_of", token=HEAD, duplicate_of=case_id)
        assert status == 200
        assert (dup["state"], dup["duplicate_of"]) == ("duplicate", case_id)

        response = await gw.client.get("/readyz")
        notes = (await response.json())["notes"]
        assert "GATEWAY_SLA_SCALE=2" in notes["sla_scale"]

        document = await (await gw.client.get("/openapi.json")).json()
        assert "/v1/cases/{case_id}/events" in document["paths"]
        assert "/v1/reports/sla" in document["paths"]
        assert "CaseEventRequest" in document["components"]["schemas"]


async def test_ops_sees_no_personal_data_of_a_case(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, **TOKENS) as gw:
        case_id = await new_case(gw, AGENCY)
        await ok(gw, case_id, "status_report", report={"victim_status": "safe"})

        status, staff = await get_case(gw, case_id, SATGAS)
        assert status == 200
        assert staff["case"]["victims"][0]["name"]
        assert staff["case"]["location"]["address"]
        assert staff["history"][0]["details"]["report"]["victim_status"] == "safe"

        status, ops = await get_case(gw, case_id, OPS)
        assert status == 200
        text = json.dumps(ops)
        for secret in (
            staff["case"]["victims"][0]["name"],
            staff["case"]["location"]["address"],
            staff["case"]["reporter"]["phone"],
            staff["case"]["narrative"],
        ):
            assert secret not in text
        assert ops["case"]["victims"][0]["age_band"] == staff["case"]["victims"][0]["age_band"]
        assert ops["history"][0]["details"] is None
        assert [(s["step"], s["due_at"]) for s in ops["steps"]] == [
            (s["step"], s["due_at"]) for s in staff["steps"]
        ]


# ---- restarts and two processes ----


async def test_deadlines_pending_at_a_restart_fire_once_after_it(tmp_path: Path) -> None:
    # scale 20: SOP 1 warns at 0.8 s, SOP 2 is due at 2.5 s, SOP 3 at 4 s
    settings: dict[str, Any] = {
        "sla_scale": 20,
        "sla_timer_poll_s": 0.05,
        "namespace": f"t{uuid.uuid4().hex[:10]}",
        "database_url": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        **TOKENS,
    }
    async with running_gateway(tmp_path, **settings) as first:
        case_id = await new_case(first)
        database = database_of(first)
    assert sla_rows(database, case_id) == [], "stopped before any deadline"

    await asyncio.sleep(1.5)  # SOP 1's warning and breach fall due while no gateway runs
    async with running_gateway(tmp_path, **settings):
        rows = await wait_for_sla(database, case_id, 6, timeout_s=10)
        await asyncio.sleep(0.5)
        rows = sla_rows(database, case_id)
    assert Counter((step, event) for _, step, event in rows) == {
        (step, event): 1 for step in (1, 2, 3) for event in ("warning", "breached")
    }


async def test_two_gateways_on_one_file_fire_each_deadline_once(tmp_path: Path) -> None:
    settings: dict[str, Any] = {
        "sla_scale": 50,
        "sla_timer_poll_s": 0.02,
        "namespace": f"t{uuid.uuid4().hex[:10]}",
        "database_url": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        **TOKENS,
    }
    async with running_gateway(tmp_path, **settings) as one, running_gateway(tmp_path, **settings):
        cases = [await new_case(one) for _ in range(4)]
        database = database_of(one)
        # scale 50: SOP 3 of each case is due by 1.6 s after its receipt
        for case_id in cases:
            await wait_for_sla(database, case_id, 6, timeout_s=10)
        await asyncio.sleep(0.5)
        rows = sla_rows(database)
    counted = Counter((case_id, step, event) for case_id, step, event in rows if step <= 3)
    assert counted == {
        (case_id, step, event): 1
        for case_id in cases
        for step in (1, 2, 3)
        for event in ("warning", "breached")
    }


# ---- the compliance report and the SIMFONI export ----


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_the_compliance_report_matches_figures_computed_by_hand(tmp_path: Path) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(t0)
    async with running_gateway(tmp_path, clock=clock, **TOKENS) as gw:
        received: dict[str, datetime] = {}
        ids: dict[str, str] = {}
        for name, fixture in (("A", LONE), ("B", LONE), ("C", AGENCY), ("D", LONE), ("E", LONE)):
            received[name] = clock.now
            ids[name] = await new_case(gw, fixture)
            clock.now += timedelta(seconds=1)
        clock.now = t0 + timedelta(hours=5)

        async def at(name: str, kind: str, seconds: int, **fields: Any) -> None:
            when = (received[name] + timedelta(seconds=seconds)).isoformat()
            token = HEAD if kind in {"team_assigned", "cancelled"} else SATGAS
            status, body = await send(gw, ids[name], kind, token=token, at=when, **fields)
            assert status == 200, body

        # A: SOP 1 10 s met, 2 0 s met, 3 40 s breached (30 s), 4 300 s met, 5 1 h met,
        #    7 20 min breached (15 min); path total 5140 s
        await at("A", "reported_to_head", 10)
        await at("A", "team_assigned", 50, team_id="t1")
        await at("A", "team_departed", 340)
        await at("A", "follow_up_documented", 3940, documentation=["d1"])
        await at("A", "reported_to_head_final", 5140)
        # B: SOP 1 30 s breached; its late finish leaves SOP 2's window at [20 s, 50 s):
        #    2 25 s met, 3 15 s met, 4 840 s breached, 5 15340 s breached, 7 1440 s breached;
        #    path total 16500 s (over the path's 15980 s, within the SOP's 16860 s)
        await at("B", "acknowledged", 30)
        await at("B", "reported_to_head", 45)
        await at("B", "team_assigned", 60, team_id="t2")
        await at("B", "team_departed", 900)
        await at("B", "follow_up_documented", 16000, documentation=["d2"])
        await at("B", "reported_to_head_final", 16500)
        # C (SOP 6 path): 6 200 s met, 7 600 s met, 8 700 s breached (10 min); total 1500 s
        await at(
            "C",
            "status_report",
            200,
            report={"victim_status": "safe", "services": ["penjangkauan"]},
        )
        await at("C", "reported_to_head_final", 800)
        await at(
            "C",
            "handling_report",
            1500,
            report={"victim_status": "safe", "services": ["kesehatan", "penjangkauan"]},
        )
        # D: left alone for 5 h: every step of its path is past due (no elapsed time)
        # E: cancelled before SOP 1 was due: nothing to judge
        await at("E", "cancelled", 10)

        query = {
            "from": (t0 - timedelta(seconds=1)).isoformat(),
            "to": (t0 + timedelta(minutes=1)).isoformat(),
        }
        auth = {"Authorization": f"Bearer {OPS}"}
        response = await gw.client.get("/v1/reports/sla", params=query, headers=auth)
        assert response.status == 200
        got = await response.json()

        assert got["cases"] == 5
        steps = {
            s["step"]: (s["count"], s["met"], s["breached"], s["median_s"], s["p90_s"])
            for s in got["steps"]
        }
        assert steps == {
            1: (3, 1, 2, 20.0, 30.0),
            2: (3, 2, 1, 12.5, 25.0),
            3: (3, 1, 2, 27.5, 40.0),
            4: (3, 1, 2, 570.0, 840.0),
            5: (3, 1, 2, 9470.0, 15340.0),
            6: (1, 1, 0, 200.0, 200.0),
            7: (4, 1, 3, 1200.0, 1440.0),
            8: (1, 0, 1, 700.0, 700.0),
        }
        assert {s["step"]: s["breach_rate"] for s in got["steps"]}[7] == 0.75
        paths = {
            p["path"]: (
                p["count"],
                p["within_standard"],
                p["within_sop_total"],
                p["median_s"],
                p["p90_s"],
            )
            for p in got["paths"]
        }
        assert paths == {
            "step5": (2, 1, 2, 10820.0, 16500.0),
            "step6": (1, 1, 1, 1500.0, 1500.0),
        }
        assert {p["path"]: p["standard_s"] for p in got["paths"]} == {
            "step5": 15980.0,
            "step6": 2480.0,
        }

        response = await gw.client.get(
            "/v1/reports/sla", params=query, headers={**auth, "Accept": "text/csv"}
        )
        assert response.status == 200
        assert response.content_type == "text/csv"
        lines = (await response.text()).splitlines()
        assert lines[0].startswith("kind,id,activity,standard_s,count,met,breached")
        assert lines[7] == "step,7,report to the head,900.0,4,1,3,0.75,1200.0,1440.0,"
        assert lines[9] == "path,step5,steps 1-2-3-4-5-7,15980.0,2,1,1,0.5,10820.0,16500.0,2"

        # SIMFONI-PPA: one row per victim of the closed cases A, B and C
        export_query = {"from": t0.isoformat(), "to": (t0 + timedelta(hours=5)).isoformat()}
        head = {"Authorization": f"Bearer {HEAD}"}
        response = await gw.client.get("/v1/exports/simfoni", params=export_query, headers=head)
        assert response.status == 200
        rows = (await response.json())["rows"]
        by_case = {row["case_id"]: row for row in rows}
        assert set(by_case) == {ids["A"], ids["B"], ids["C"]}
        c_row = by_case[ids["C"]]
        assert c_row["services"] == ["penjangkauan", "kesehatan"]
        assert c_row["kecamatan"] == "Pinang"
        assert c_row["perpetrator_relationships"] == ["husband"]
        assert c_row["victim_sex"] == "female"
        a_row = by_case[ids["A"]]
        assert a_row["services"] == []
        assert a_row["victim_age_band"] == "35-44"
        assert "name" not in json.dumps(rows)

        response = await gw.client.get(
            "/v1/exports/simfoni", params=export_query, headers={**head, "Accept": "text/csv"}
        )
        csv_lines = (await response.text()).splitlines()
        assert csv_lines[0].startswith("case_id,received_on,closed_on,kecamatan,violence_forms")
        assert len(csv_lines) == 4

        response = await gw.client.get("/v1/exports/simfoni", params=export_query, headers=auth)
        assert response.status == 403, "ops may not export"
        response = await gw.client.get(
            "/v1/reports/sla", params={"from": "yesterday"}, headers=auth
        )
        assert response.status == 400
