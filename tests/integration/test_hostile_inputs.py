"""Hostile inputs against the real gateway, each with the answer it must get.

Every refusal is problem+json, nothing answers 5xx, and refused bodies are quarantined.
"""

import asyncio
import contextlib
import io
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from gateway_support import RunningGateway, delete_namespace, running_gateway, settings_for_test
from samples import (
    fixture_bytes,
    fixture_json,
    new_secret,
    personal_strings,
    sealer_for_test,
    set_at,
    string_paths,
)
from standardwebhooks.webhooks import Webhook

from gateway import signing
from gateway.adapters.simulator_112 import create_simulator_app
from gateway.adapters.store import SqlStore
from gateway.adapters.store.intake import PRUNE_EVERY
from gateway.bootstrap import RUNTIME, build_app
from gateway.errors import WebhookReplayed
from gateway.model import QuarantinedInput, SignedMessage

SEALER = sealer_for_test()

pytestmark = pytest.mark.integration

INTAKE = "/v1/reports/si-lacak-perak"
VALID = "valid-01-app-basic.json"


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with running_gateway(tmp_path) as running:
        yield running


def signed(
    body: bytes, secret: str, *, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    return signing.webhook_headers(
        [secret], msg_id or str(uuid.uuid4()), body, at or datetime.now(UTC)
    )


async def post(gw: RunningGateway, body: bytes, **header_overrides: str) -> tuple[int, Any]:
    headers = signed(body, gw.inbound_secret) | header_overrides
    response = await gw.client.post(INTAKE, data=body, headers=headers)
    if response.status != 202:
        assert response.content_type == "application/problem+json", response.status
    return response.status, await response.json(content_type=None)


async def quarantine_reasons(settings_path: Path) -> list[object]:
    store = await SqlStore.open(settings_path, sealer=SEALER)
    try:
        return [q["reason"] for q in await store.quarantined()]
    finally:
        await store.close()


# --- sizes and timing ---------------------------------------------------------------


async def test_20_mb_body_with_a_length_is_refused_before_it_is_read(gw: RunningGateway) -> None:
    body = b"x" * (20 * 1024 * 1024)
    headers = signed(body, gw.inbound_secret)
    started = time.monotonic()
    response = await gw.client.post(INTAKE, data=io.BytesIO(body), headers=headers)
    assert response.status == 413
    assert response.content_type == "application/problem+json"
    assert "exceeds" in (await response.json(content_type=None))["detail"]
    assert time.monotonic() - started < 5


async def test_20_mb_streamed_body_is_cut_off_early(gw: RunningGateway) -> None:
    sent = 0
    total = 20 * 1024 * 1024

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"[" + b" " * (64 * 1024 - 1)
        while sent < total:
            sent += len(chunk)
            yield chunk
            await asyncio.sleep(0)

    headers = signed(b"", gw.inbound_secret)
    started = time.monotonic()
    response = await gw.client.post(INTAKE, data=stream(), headers=headers)
    sent_when_answered = sent
    assert response.status == 413
    assert response.content_type == "application/problem+json"
    assert sent_when_answered < total // 2
    assert time.monotonic() - started < 5


async def test_a_body_that_trickles_in_gets_408_and_is_quarantined(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, body_timeout_s=0.5) as gw:

        async def trickle() -> AsyncIterator[bytes]:
            yield b'{"id_laporan": '
            await asyncio.sleep(3)
            yield b'"late"}'

        headers = signed(b"", gw.inbound_secret)
        started = time.monotonic()
        response = await gw.client.post(INTAKE, data=trickle(), headers=headers)
        assert response.status == 408
        assert response.content_type == "application/problem+json"
        assert time.monotonic() - started < 2.5
        assert await quarantine_reasons(gw.settings.sqlite_path()) == ["body-timeout"]


# --- malformed JSON -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        pytest.param(b"[" * 10_000 + b"]" * 10_000, 400, "malformed-body", id="10000-deep-array"),
        pytest.param(
            b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400, "malformed-body", id="deep-obj"
        ),
        pytest.param(b'{"id_laporan": "\xff\xfe"}', 400, "malformed-body", id="invalid-utf8"),
        pytest.param(b'{"kanal": NaN}', 400, "malformed-body", id="nan"),
        pytest.param(b'{"kanal": Infinity}', 400, "malformed-body", id="infinity"),
        pytest.param(b'{"kanal": -Infinity}', 400, "malformed-body", id="minus-infinity"),
        pytest.param(b"[1, 2, 3]", 422, "invalid-report", id="array-at-the-top"),
        pytest.param(b'"just a string"', 422, "invalid-report", id="string-at-the-top"),
    ],
)
async def test_malformed_json_is_a_problem_and_quarantined(
    gw: RunningGateway, body: bytes, status: int, slug: str
) -> None:
    answered, problem = await post(gw, body)
    assert answered == status
    assert problem["type"].endswith("/" + slug)
    reasons = await quarantine_reasons(gw.settings.sqlite_path())
    assert reasons == [slug.replace("-", "_") if slug == "invalid-report" else slug]


async def test_duplicate_keys_name_the_key(gw: RunningGateway) -> None:
    text = fixture_bytes(VALID).decode()
    body = text.replace('"kanal":', '"kanal": "hotline", "kanal":', 1).encode()
    status, problem = await post(gw, body)
    assert status == 422
    assert [e["pointer"] for e in problem["errors"]] == ["/kanal"]


async def test_wrong_content_type_is_415(gw: RunningGateway) -> None:
    status, _ = await post(gw, fixture_bytes(VALID), **{"content-type": "text/plain"})
    assert status == 415


async def test_json_deeper_than_the_limit_names_where(gw: RunningGateway) -> None:
    report = fixture_json(VALID)
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"x": deep}
    report["extra"] = deep
    status, problem = await post(gw, json.dumps(report).encode())
    assert status == 422
    [error] = problem["errors"]
    assert error["pointer"] == "/extra" + "/x" * 31
    assert "32 levels" in error["detail"]


async def test_too_many_items_in_an_array_names_the_array(gw: RunningGateway) -> None:
    report = fixture_json(VALID)
    report["korban"] = report["korban"] * 101
    status, problem = await post(gw, json.dumps(report).encode())
    assert status == 422
    assert [e["pointer"] for e in problem["errors"]] == ["/korban"]


async def test_a_huge_string_in_any_field_is_refused_naming_that_field(gw: RunningGateway) -> None:
    """Over the field's own limit (every field's is under 5 001 characters) and over the
    body-wide 10 000: each refused by name, never quoted, and kept in quarantine."""
    pointers = list(string_paths(fixture_json(VALID)))
    assert len(pointers) > 10
    sent = 0
    for pointer in pointers:
        for size in (5_001, 20_000):
            report = fixture_json(VALID)
            set_at(report, pointer, "ж" * size)
            status, problem = await post(gw, json.dumps(report, ensure_ascii=False).encode())
            sent += 1
            assert status == 422, (pointer, size)
            assert [e["pointer"] for e in problem["errors"]] == [pointer]
            assert "ж" not in json.dumps(problem, ensure_ascii=False)
    store = await gw.store()
    try:
        assert await store.count_cases() == 0
        quarantined = await store.quarantined(limit=10 * sent)
        assert len(quarantined) == sent
        reasons = sorted(str(q["reason"]) for q in quarantined)
        assert reasons == ["invalid_report"] * len(pointers) + ["limits-exceeded"] * len(pointers)
    finally:
        await store.close()


# --- signatures: staleness, replays, rotation -----------------------------------------


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def gateway_with_clock(
    tmp_path: Path, clock: Callable[[], datetime], **overrides: Any
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = settings_for_test(tmp_path, **overrides)
    app = build_app(settings, clock=clock)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        async with asyncio.timeout(15):
            await app[RUNTIME].broker_up.wait()
        yield client
    finally:
        await client.close()
        await delete_namespace(settings)


async def test_a_signature_replayed_after_six_minutes_is_401(tmp_path: Path) -> None:
    secret = new_secret()
    clock = Clock(datetime.now(UTC))
    body = fixture_bytes(VALID)
    headers = signed(body, secret, at=clock.now)
    async with gateway_with_clock(tmp_path, clock, inbound_secret=secret) as client:
        first = await client.post(INTAKE, data=body, headers=headers)
        assert first.status == 202
        clock.now += timedelta(minutes=6)
        again = await client.post(INTAKE, data=body, headers=headers)
        assert again.status == 401
        assert again.content_type == "application/problem+json"
        assert "tolerance" in (await again.json(content_type=None))["detail"]


async def test_a_replayed_webhook_id_is_401_even_after_a_restart(tmp_path: Path) -> None:
    secret = new_secret()
    body = fixture_bytes(VALID)
    headers = signed(body, secret)
    clock = Clock(datetime.now(UTC))
    async with gateway_with_clock(tmp_path, clock, inbound_secret=secret) as client:
        first = await client.post(INTAKE, data=body, headers=headers)
        assert first.status == 202
        case_id = (await first.json())["case_id"]
        replay = await client.post(INTAKE, data=body, headers=headers)
        assert replay.status == 401
        assert replay.content_type == "application/problem+json"
        assert "replay" in (await replay.json(content_type=None))["detail"]
        resent = await client.post(INTAKE, data=body, headers=signed(body, secret))
        assert resent.status == 202
        assert (await resent.json())["case_id"] == case_id
    clock.now += timedelta(minutes=2)
    async with gateway_with_clock(tmp_path, clock, inbound_secret=secret) as client:
        replay = await client.post(INTAKE, data=body, headers=headers)
        assert replay.status == 401
        assert "replay" in (await replay.json(content_type=None))["detail"]
    settings = settings_for_test(tmp_path)
    assert await quarantine_reasons(settings.sqlite_path()) == [
        "webhook_replayed",
        "webhook_replayed",
    ]


async def test_a_senders_retry_signed_afresh_with_the_same_webhook_id_gets_the_same_case(
    tmp_path: Path,
) -> None:
    secret = new_secret()
    body = fixture_bytes(VALID)
    msg_id = str(uuid.uuid4())
    clock = Clock(datetime.now(UTC))
    async with gateway_with_clock(tmp_path, clock, inbound_secret=secret) as client:
        first = await client.post(INTAKE, data=body, headers=signed(body, secret, msg_id=msg_id))
        later = clock.now + timedelta(seconds=30)
        clock.now = later
        retry = await client.post(
            INTAKE, data=body, headers=signed(body, secret, msg_id=msg_id, at=later)
        )
        assert (first.status, retry.status) == (202, 202)
        assert (await retry.json())["case_id"] == (await first.json())["case_id"]
        assert (await retry.json())["duplicate"] is True


async def test_a_replayed_invalid_report_is_401_as_a_replay(tmp_path: Path) -> None:
    secret = new_secret()
    report = fixture_json(VALID)
    set_at(report, "/lokasi/kelurahan", "Nowhere")
    body = json.dumps(report).encode()
    headers = signed(body, secret)
    clock = Clock(datetime.now(UTC))
    async with gateway_with_clock(tmp_path, clock, inbound_secret=secret) as client:
        first = await client.post(INTAKE, data=body, headers=headers)
        assert first.status == 422
        replay = await client.post(INTAKE, data=body, headers=headers)
        assert replay.status == 401
        assert "replay" in (await replay.json(content_type=None))["detail"]
    settings = settings_for_test(tmp_path)
    assert sorted(map(str, await quarantine_reasons(settings.sqlite_path()))) == [
        "invalid_report",
        "webhook_replayed",
    ]


async def test_the_same_message_sent_twice_at_once_is_taken_once(tmp_path: Path) -> None:
    """Whether or not the two share a transaction of the group commit, one is the replay."""
    secret = new_secret()
    body = fixture_bytes(VALID)
    headers = signed(body, secret)
    clock = Clock(datetime.now(UTC))
    async with gateway_with_clock(tmp_path, clock, inbound_secret=secret) as client:
        answers = await asyncio.gather(
            *(client.post(INTAKE, data=body, headers=headers) for _ in range(2))
        )
        assert sorted(a.status for a in answers) == [202, 401]


async def test_a_report_the_store_could_not_take_may_be_sent_again_as_it_was(
    tmp_path: Path,
) -> None:
    """A 503 asks the sender to send the report again; a sender that resends the same
    signed request (same webhook-id and timestamp) must not be refused as a replay."""
    secret = new_secret()
    body = fixture_bytes(VALID)
    headers = signed(body, secret)
    clock = Clock(datetime.now(UTC))
    database = settings_for_test(tmp_path).sqlite_path()
    async with gateway_with_clock(tmp_path, clock, inbound_secret=secret) as client:
        with contextlib.closing(sqlite3.connect(database)) as db, db:
            db.execute(
                "CREATE TRIGGER no_cases BEFORE INSERT ON cases "
                "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
            )
        refused = await client.post(INTAKE, data=body, headers=headers)
        assert refused.status == 503
        with contextlib.closing(sqlite3.connect(database)) as db, db:
            db.execute("DROP TRIGGER no_cases")
        again = await client.post(INTAKE, data=body, headers=headers)
        assert again.status == 202
        replay = await client.post(INTAKE, data=body, headers=headers)
        assert replay.status == 401


async def _remembered(
    store: SqlStore, webhook_id: str, signed_at: int, seen_at: datetime, keep_until: datetime
) -> bool:
    """Whether quarantining input that came in this signed message takes it as new."""
    item = QuarantinedInput(
        received_at=seen_at,
        source="test",
        reason="test",
        raw=b"{}",
        message=SignedMessage(webhook_id, signed_at, seen_at=seen_at, keep_until=keep_until),
    )
    try:
        await store.quarantine(item)
    except WebhookReplayed:
        return False
    return True


async def test_remembered_webhook_ids_are_pruned_once_stale(store_url: str) -> None:
    store = await SqlStore.connect(store_url, sealer=SEALER)
    now = datetime.now(UTC)
    keep = now + timedelta(minutes=5)
    try:
        assert await _remembered(store, "a", 1, now, keep)
        assert not await _remembered(store, "a", 1, now, keep)
        assert await _remembered(store, "a", 2, now, keep)
        later = keep + timedelta(seconds=1)
        assert await _remembered(store, "b", 3, later, later)
        assert await _remembered(store, "a", 1, later, later)
    finally:
        await store.close()


async def test_stale_webhook_ids_are_pruned_at_most_once_a_second(store_url: str) -> None:
    store = await SqlStore.connect(store_url, sealer=SEALER)
    now = datetime.now(UTC)
    soon = now + timedelta(milliseconds=100)
    try:
        assert await _remembered(store, "a", 1, now, soon)
        within = soon + timedelta(milliseconds=100)
        assert not await _remembered(store, "a", 1, within, within), (
            "stale, but the last pruning was less than a second ago"
        )
        after = now + PRUNE_EVERY
        assert await _remembered(store, "a", 1, after, after)
    finally:
        await store.close()


async def test_every_inbound_secret_in_rotation_is_accepted(tmp_path: Path) -> None:
    old, new, other = new_secret(), new_secret(), new_secret()
    clock = Clock(datetime.now(UTC))
    async with gateway_with_clock(tmp_path, clock, inbound_secret=f"{old} {new}") as client:
        for secret, expected in ((old, 202), (new, 202), (other, 401)):
            body = fixture_bytes(VALID)
            response = await client.post(INTAKE, data=body, headers=signed(body, secret))
            assert response.status == expected, secret == other


@pytest.mark.parametrize("simulator_knows", ["current", "next"])
async def test_pushes_to_112_carry_a_signature_per_secret_during_rotation(
    tmp_path: Path, simulator_knows: str
) -> None:
    current, upcoming = new_secret(), new_secret()
    known = current if simulator_knows == "current" else upcoming
    sim = TestClient(TestServer(create_simulator_app(secret=known)))
    await sim.start_server()
    inbound = new_secret()
    settings = settings_for_test(
        tmp_path,
        inbound_secret=inbound,
        c112_secret=f"{current} {upcoming}",
        c112_url=str(sim.make_url("/v1/messages")),
    )
    app = build_app(settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        async with asyncio.timeout(15):
            await app[RUNTIME].broker_up.wait()
        body = fixture_bytes(VALID)
        assert (await client.post(INTAKE, data=body, headers=signed(body, inbound))).status == 202
        async with asyncio.timeout(5):
            while not (messages := await (await sim.get("/_sim/messages")).json()):  # noqa: ASYNC110 - another server
                await asyncio.sleep(0.02)
        [message] = messages
        assert message["signature_valid"] is True
        headers = {k: v for k, v in message["headers"].items() if v is not None}
        assert len(headers["webhook-signature"].split(" ")) == 2
        for secret in (current, upcoming):
            assert Webhook(secret).verify(message["raw"], headers) == message["body"]
    finally:
        await client.close()
        await sim.close()
        await delete_namespace(settings)


# --- rate limits ----------------------------------------------------------------------


async def test_a_source_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, rate_limit_burst=3, rate_limit_per_s=0.5) as gw:
        statuses = [(await gw.client.get("/healthz")).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = await gw.client.get("/healthz")
        assert refused.status == 429
        assert refused.content_type == "application/problem+json"
        assert refused.headers["Retry-After"] == "2"
        status, _ = await post(gw, fixture_bytes(VALID))
        assert status == 429


# --- personal data in the delivery log ------------------------------------------------


async def test_the_delivery_log_holds_no_personal_data(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        await gw.sim.put("/_sim/mode", json={"mode": "fail", "fail_next": 2})
        for name in ("valid-01-app-basic.json", "valid-02-patbm-cadre-child.json"):
            status, _ = await post(gw, fixture_bytes(name))
            assert status == 202
        await gw.wait_for_sim(4, timeout_s=15)
        store = await gw.store()
        try:
            async with asyncio.timeout(10):
                while len(rows := await store.delivery_log(limit=1000)) < 4:  # noqa: ASYNC110 - another process's writes
                    await asyncio.sleep(0.05)
        finally:
            await store.close()
    outcomes = {row.outcome.value for row in rows}
    assert "delivered" in outcomes
    assert len(outcomes) > 1, outcomes
    text = json.dumps([repr(row) for row in rows], ensure_ascii=False)
    assert sorted(s for s in personal_strings() if s in text) == []
