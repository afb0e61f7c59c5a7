"""The ops console's API and live stream, against the running gateway."""

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gateway_support import RunningGateway, running_gateway
from samples import fixture_bytes, personal_strings

from gateway.adapters.tail import render, tail

pytestmark = pytest.mark.integration

OPS_TOKEN = "ops-token-for-tests-0123456789"


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with running_gateway(tmp_path, ops_token=OPS_TOKEN) as running:
        yield running


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPS_TOKEN}"}


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


async def test_no_personal_data_in_the_page_or_any_answer(gw: RunningGateway) -> None:
    for name in ("valid-01-app-basic.json", "valid-02-patbm-cadre-child.json"):
        await gw.post_report(fixture_bytes(name))
    await gw.wait_for_sim(2, timeout_s=5)
    texts = [await (await gw.client.get(path)).text() for path in ("/ops", "/ops/static/ops.js")]
    texts.append(await (await gw.client.get("/v1/ops/deliveries", headers=_auth())).text())
    leaked = sorted(s for s in personal_strings() for text in texts if s in text)
    assert leaked == []


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
