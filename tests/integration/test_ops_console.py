"""The ops console's API and live stream, against the running gateway."""

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from gateway_support import RunningGateway, eventually, running_gateway
from prometheus_client.parser import text_string_to_metric_families
from prometheus_support import promtool_problems
from samples import VALID_SAMPLES, fixture_bytes, fixture_json, personal_strings

from gateway.adapters.tail import render, tail

pytestmark = pytest.mark.integration

OPS_TOKEN = "ops-token-for-tests-0123456789"
STATIC = Path(__file__).parents[2] / "gateway" / "adapters" / "static"
OPS_API = ("/v1/ops/deliveries", "/v1/ops/recipients", "/v1/ops/at-risk", "/v1/ops/parked")


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with running_gateway(tmp_path, ops_token=OPS_TOKEN) as running:
        yield running


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPS_TOKEN}"}


def _variant(name: str, reference: str) -> bytes:
    """A fixture report under another id_laporan: a new case with the same content."""
    report = fixture_json(name)
    report["id_laporan"] = reference
    return json.dumps(report).encode()


async def _get(gw: RunningGateway, path: str) -> str:
    response = await gw.client.get(path, headers=_auth())
    assert response.status == 200, (path, response.status)
    return await response.text()


async def _wait_for(
    gw: RunningGateway, path: str, ready: Callable[[Any], Any], timeout_s: float = 5
) -> Any:
    """GET ``path`` until ``ready`` holds of its JSON; answers that JSON."""
    async with asyncio.timeout(timeout_s):
        while not ready(page := json.loads(await _get(gw, path))):  # noqa: ASYNC110 - polling an API
            await asyncio.sleep(0.1)
    return page


def _c112(page: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in page["recipients"] if r["recipient"] == "c112")
    return found


async def _next_event(stream: Any, timeout_s: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        data = ""
        while True:
            line = (await stream.content.readline()).decode()
            if line.startswith("data: "):
                data += line[6:].rstrip("\n")
            elif line == "\n" and data:
                event: dict[str, Any] = json.loads(data)
                return event


async def test_a_delivery_appears_on_the_live_stream_within_a_second(gw: RunningGateway) -> None:
    stream = await gw.client.get("/v1/ops/deliveries/stream", headers=_auth())
    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    status, body = await gw.post_report(fixture_bytes("valid-01-app-basic.json"))
    assert status == 202
    event = await _next_event(stream, timeout_s=5)
    assert event["case_id"] == body["case_id"]
    assert event["recipient"] == "c112"
    assert event["outcome"] == "delivered"
    stream.close()


async def test_log_filters_and_search(gw: RunningGateway) -> None:
    _, first = await gw.post_report(fixture_bytes("valid-01-app-basic.json"))
    _, second = await gw.post_report(fixture_bytes("valid-02-patbm-cadre-child.json"))
    await gw.wait_for_sim(2, timeout_s=5)
    await asyncio.sleep(0.2)

    everything = await (await gw.client.get("/v1/ops/deliveries", headers=_auth())).json()
    assert {e["case_id"] for e in everything["entries"]} == {first["case_id"], second["case_id"]}

    by_case = await (
        await gw.client.get("/v1/ops/deliveries", params={"q": first["case_id"]}, headers=_auth())
    ).json()
    assert [e["case_id"] for e in by_case["entries"]] == [first["case_id"]]
    by_id = await (
        await gw.client.get(
            "/v1/ops/deliveries",
            params={"q": by_case["entries"][0]["distribution_id"]},
            headers=_auth(),
        )
    ).json()
    assert len(by_id["entries"]) == 1

    none = await (
        await gw.client.get("/v1/ops/deliveries", params={"outcome": "parked"}, headers=_auth())
    ).json()
    assert none["entries"] == []
    after = await (
        await gw.client.get(
            "/v1/ops/deliveries", params={"after_id": everything["last_id"]}, headers=_auth()
        )
    ).json()
    assert after["entries"] == []


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"outcome": "lost"}, "?outcome"),
        ({"since": "yesterday"}, "?since"),
        ({"limit": "-1"}, "?limit"),
    ],
)
async def test_a_bad_filter_is_a_400_naming_it(
    gw: RunningGateway, params: dict[str, str], pointer: str
) -> None:
    response = await gw.client.get("/v1/ops/deliveries", params=params, headers=_auth())
    assert response.status == 400
    problem = await response.json(content_type=None)
    assert [e["pointer"] for e in problem["errors"]] == [pointer]


async def test_the_api_needs_the_ops_token(gw: RunningGateway) -> None:
    assert (await gw.client.get("/v1/ops/deliveries")).status == 401
    wrong = {"Authorization": "Bearer not-a-token"}
    assert (await gw.client.get("/v1/ops/deliveries", headers=wrong)).status == 401
    page = await gw.client.get("/ops")
    assert page.status == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


async def test_no_personal_data_in_the_page_or_any_answer(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, ops_token=OPS_TOKEN, sla_scale=300.0) as gw:
        case_ids = []
        for name in VALID_SAMPLES:
            _, body = await gw.post_report(fixture_bytes(name))
            case_ids.append(body["case_id"])
        await gw.wait_for_sim(1, timeout_s=5)
        await gw.sim.put("/_sim/mode", json={"mode": "reject", "reason": "ditolak"})
        _, parked = await gw.post_report(_variant("valid-01-app-basic.json", "SLP-PARK"))
        case_ids.append(parked["case_id"])
        await _wait_for(gw, "/v1/ops/parked", lambda page: bool(page["parked"]))
        await _wait_for(gw, "/v1/ops/at-risk", lambda page: bool(page["entries"]))

        answers = {path: await _get(gw, path) for path in OPS_API}
        for case_id in case_ids:
            for path in (f"/v1/cases/{case_id}", f"/v1/ops/cases/{case_id}/delivery"):
                answers[path] = await _get(gw, path)
        answers["/v1/ops/parked"] = await _get(gw, "/v1/ops/parked")
        for page in ("/ops", *(f"/ops/static/{n}" for n in ("ops.js", "ops.css"))):
            answers[page] = await (await gw.client.get(page)).text()

    assert json.loads(answers["/v1/ops/at-risk"])["entries"], "nothing at risk: a weak test"
    assert json.loads(answers["/v1/ops/parked"])["parked"], "nothing parked: a weak test"
    leaked = sorted(
        (path, s) for s in personal_strings() for path, text in answers.items() if s in text
    )
    assert leaked == []


def test_the_page_never_parses_text_as_html() -> None:
    script = (STATIC / "ops.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    page = (STATIC / "ops.html").read_text(encoding="utf-8")
    assert "<script>" not in page, "inline script: the CSP would block it anyway"
    assert not re.search(r"\son[a-z]+\s*=", page), "an inline event handler"


async def test_recipients_show_circuit_backlog_and_the_last_hour(tmp_path: Path) -> None:
    async with running_gateway(
        tmp_path, ops_token=OPS_TOKEN, push_attempts=1, breaker_threshold=1
    ) as gw:
        await gw.post_report(fixture_bytes("valid-01-app-basic.json"))
        await gw.wait_for_sim(1, timeout_s=5)
        healthy = await _wait_for(
            gw, "/v1/ops/recipients", lambda p: _c112(p)["delivered_last_hour"] == 1
        )
        c112 = _c112(healthy)
        assert c112["kind"] == "c112"
        assert c112["circuit"] == "closed"
        assert c112["delivering"] is True
        assert c112["queue"] == f"{gw.settings.namespace}.deliver.c112"
        assert c112["queued"] == 0
        assert (c112["waiting"], c112["oldest_waiting_at"], c112["failed_last_hour"]) == (
            0,
            None,
            0,
        )
        shared = {q["queue"]: q["messages"] for q in healthy["shared_queues"]}
        ns = gw.settings.namespace
        assert shared == {f"{ns}.retry.1s": 0, f"{ns}.retry.2s": 0, f"{ns}.parking": 0}

        await gw.sim.put("/_sim/mode", json={"mode": "fail", "status": 503})
        await gw.post_report(fixture_bytes("valid-02-patbm-cadre-child.json"))
        failing = await _wait_for(gw, "/v1/ops/recipients", lambda p: _c112(p)["failed_last_hour"])
        c112 = _c112(failing)
        assert c112["circuit"] == "open"
        assert c112["waiting"] >= 1
        assert c112["oldest_waiting_age_s"] >= 0
        assert c112["delivered_last_hour"] == 1


async def test_at_risk_counts_down_to_the_deadline_of_steps_and_112(tmp_path: Path) -> None:
    # at scale 300 SOP 6's 5 minutes, and 112's, are 1 s: at risk from 0.8 s
    async with running_gateway(tmp_path, ops_token=OPS_TOKEN, sla_scale=300.0) as gw:
        await gw.sim.put("/_sim/mode", json={"mode": "fail", "status": 503})
        _, body = await gw.post_report(fixture_bytes("valid-01-app-basic.json"))
        page = await _wait_for(
            gw,
            "/v1/ops/at-risk",
            lambda p: {"sla_step", "delivery"} <= {e["kind"] for e in p["entries"]},
        )
        entries = page["entries"]
        assert [e["deadline_at"] for e in entries] == sorted(e["deadline_at"] for e in entries)
        step = next(e for e in entries if e["kind"] == "sla_step")
        assert (step["case_id"], step["step"], step["kecamatan"]) == (body["case_id"], 6, "Pinang")
        assert step["activity"]
        delivery = next(e for e in entries if e["kind"] == "delivery")
        assert delivery["recipient"] == "c112"
        assert delivery["distribution_id"]
        deadline = datetime.fromisoformat(delivery["deadline_at"])
        assert deadline == datetime.fromisoformat(body["c112_deadline_at"])
        missed = await _wait_for(
            gw,
            "/v1/ops/at-risk",
            lambda p: any(e["kind"] == "delivery" and e["seconds_left"] < 0 for e in p["entries"]),
        )
        assert missed["at"] > page["at"]

        await gw.sim.put("/_sim/mode", json={"mode": "ok"})
        await _wait_for(
            gw,
            "/v1/ops/at-risk",
            lambda p: all(e["kind"] != "delivery" for e in p["entries"]),
            timeout_s=10,
        )


async def test_metrics_after_real_deliveries(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, ops_token=OPS_TOKEN, sla_scale=300.0) as gw:
        _, body = await gw.post_report(fixture_bytes("valid-01-app-basic.json"))
        await gw.wait_for_sim(1, timeout_s=5)
        await _wait_for(
            gw, "/v1/ops/at-risk", lambda p: any(e["kind"] == "sla_step" for e in p["entries"])
        )

        async def breached() -> bool:
            text = await (await gw.client.get("/metrics")).text()
            breaches = (
                s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "gateway_sla_breaches_total" and s.labels == {"step": "6"}
            )
            return sum(breaches) >= 1

        await eventually(breached, 10, "the timer service fires SOP 6's breach")
        text = await (await gw.client.get("/metrics")).text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("gateway_deliveries_total", recipient="c112", outcome="delivered") == 1
    assert value("gateway_delivery_latency_seconds_count", recipient="c112") == 1
    margin_le_0 = value(
        "gateway_delivery_deadline_margin_seconds_bucket", recipient="c112", le="0.0"
    )
    assert value("gateway_delivery_deadline_margin_seconds_count", recipient="c112") == 1
    assert margin_le_0 == 0, "delivered at once: before its deadline"
    ns = gw.settings.namespace
    assert value("gateway_queue_messages", queue=f"{ns}.deliver.c112") == 0
    assert value("gateway_queue_messages", queue=f"{ns}.parking") == 0
    assert value("gateway_outbox_lag_messages") == 0
    assert value("gateway_outbox_lag_seconds") == 0
    assert value("gateway_circuit_state", recipient="c112") == 0
    assert value("gateway_sla_warnings_total", step="6") >= 1
    assert value("gateway_sla_breaches_total", step="6") >= 1
    assert promtool_problems(text) == (0, "")

    # the same check, shown to see a counter named against Prometheus's conventions
    misnamed = text.replace("gateway_deliveries_total", "gateway_deliveries")
    status, problems = promtool_problems(misnamed)
    assert status != 0
    assert "gateway_deliveries" in problems
    assert value("gateway_intake_total", source="si-lacak-perak", outcome="accepted") == 1
    labels = {v for _, pairs in samples for _, v in pairs}
    assert not {s for s in personal_strings() for v in labels if s in v}
    assert body["case_id"] not in text, "a case id is not a label value"


async def test_gateway_tail_prints_json_lines_off_a_terminal(gw: RunningGateway) -> None:
    out = io.StringIO()
    follower = asyncio.create_task(
        tail(str(gw.client.make_url("/")), OPS_TOKEN, {"recipient": "c112"}, out=out, limit=1)
    )
    await asyncio.sleep(0.3)
    _, body = await gw.post_report(fixture_bytes("valid-01-app-basic.json"))
    async with asyncio.timeout(5):
        assert await follower == 0
    line = json.loads(out.getvalue())
    assert line["case_id"] == body["case_id"]
    assert line["outcome"] == "delivered"


def test_gateway_tail_colours_outcomes_on_a_terminal() -> None:
    entry = {
        "at": "t",
        "case_id": "c",
        "recipient": "c112",
        "attempt": 2,
        "outcome": "parked",
        "status_code": 400,
        "latency_ms": 12.4,
    }
    line = render(entry, colour=True)
    assert "\x1b[31mparked" in line
    assert "400" in line
    assert "12 ms" in line
