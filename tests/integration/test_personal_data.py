"""Personal data at rest (sealed, keys rotating), the retention purge and the audit log,
through the whole gateway and against the store's databases."""

import asyncio
import json
import shutil
import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from databases import execute, query
from gateway_support import RunningGateway, eventually, running_gateway
from samples import (
    INVALID_SAMPLES,
    TEST_DATA_KEYS,
    VALID_SAMPLES,
    fixture_bytes,
    fixture_json,
    personal_strings,
    sealed_report,
    sealer_for_test,
)

from contracts.envelope import RecipientRole
from contracts.subscription import DeliveryMode, SubscriptionStatus
from gateway import audit, bootstrap, cli
from gateway.adapters.auth import token_fingerprint
from gateway.adapters.sealing import MAGIC, Sealer, key_id_of, new_data_key
from gateway.adapters.store import SqlStore, sealed_columns
from gateway.errors import SealedDataUnreadable
from gateway.model import ParkedSelector
from gateway.partners import Subscription
from gateway.settings import Settings

pytestmark = pytest.mark.integration

SATGAS = "satgas-token-0123456789abcdef"
HEAD = "head-token-0123456789abcdef01"
OPS = "ops-token-0123456789abcdef0123"
TOKENS: dict[str, Any] = {"satgas_token": SATGAS, "head_token": HEAD, "ops_token": OPS}
LONE = "valid-03-hotline-anonymous-no-medis.json"  # starts at SOP 1
DOCUMENT = "berkas/berita-acara-rahasia-0042.pdf"  # an S2 detail of a case event
# 112 refusing valid-01's push, echoing what it was sent (callback phone, address, landmark)
ECHO = "ditolak: +6281200007801, Jl. Melati No. 12 (dekat masjid)"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique(name: str) -> bytes:
    body = fixture_json(name)
    body["id_laporan"] = f"SLP-{uuid.uuid4().hex[:12]}"
    return json.dumps(body).encode()


async def new_case(gw: RunningGateway, name: str = LONE) -> str:
    status, body = await gw.post_report(unique(name))
    assert status == 202, body
    case_id: str = body["case_id"]
    return case_id


async def event(gw: RunningGateway, case_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    token = HEAD if kind in {"team_assigned", "cancelled", "closed"} else SATGAS
    role = "head" if token == HEAD else "satgas"
    response = await gw.client.post(
        f"/v1/cases/{case_id}/events",
        json={"type": kind, "by": {"role": role, "id": "staff-7"}, **fields},
        headers=auth(token),
    )
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def close(gw: RunningGateway, case_id: str) -> None:
    await event(gw, case_id, "acknowledged")
    await event(gw, case_id, "reported_to_head")
    await event(gw, case_id, "team_assigned", team_id="tim-3")
    await event(gw, case_id, "team_departed")
    await event(gw, case_id, "follow_up_documented", documentation=[DOCUMENT])
    closed = await event(gw, case_id, "reported_to_head_final")
    assert closed["state"] == "closed"


async def get_json(gw: RunningGateway, path: str, token: str) -> Any:
    response = await gw.client.get(path, headers=auth(token))
    assert response.status == 200, await response.text()
    return await response.json()


def every_value(database: Path) -> Iterator[tuple[str, str, bytes]]:
    """(table, column, value as bytes) of every non-null cell of every table."""
    with sqlite3.connect(database) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the schema
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if value is not None:
                        raw = value if isinstance(value, bytes) else str(value).encode()
                        yield table, column, raw


def leaks_in(database: Path) -> list[tuple[str, str, str]]:
    secrets = [(s, s.encode()) for s in sorted(personal_strings() | {DOCUMENT})]
    return [
        (table, column, text)
        for table, column, raw in every_value(database)
        for text, needle in secrets
        if needle in raw
    ]


# --- personal data at rest ------------------------------------------------------------


async def fill_every_table(gw: RunningGateway) -> str:
    """Every fixture report, every refused one, a parked message, a closed case with a
    documented event (its id) and, last, a report 112 keeps refusing (its message and
    escalation timers pending)."""
    await gw.sim.put("/_sim/mode", json={"mode": "reject", "reason": "ditolak"})
    for name in VALID_SAMPLES:
        status, body = await gw.post_report(fixture_bytes(name))
        assert status == 202, body
    for name in INVALID_SAMPLES:
        status, _ = await gw.post_report(fixture_bytes(name))
        assert status == 422
    case_id = await new_case(gw)
    await close(gw, case_id)
    store = await gw.store()
    try:
        async with asyncio.timeout(20):
            while not await store.parked(ParkedSelector()):  # noqa: ASYNC110 - the store
                await asyncio.sleep(0.1)
        assert len(await store.quarantined()) == len(INVALID_SAMPLES)
    finally:
        await store.close()
    await gw.sim.put("/_sim/mode", json={"mode": "fail", "status": 503})
    await new_case(gw, VALID_SAMPLES[0])
    return case_id


async def test_no_personal_string_is_anywhere_in_the_store_file(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, **TOKENS) as gw:
        case_id = await fill_every_table(gw)
        store = await gw.store()
        try:
            full = await store.get_case(case_id)
            assert full is not None
            assert full.victims[0].age is not None, "the store still gives the whole case"
        finally:
            await store.close()
        database = gw.settings.sqlite_path()
        kinds = {table for table, _, _ in every_value(database)}
        assert {"cases", "reports", "outbox", "parked", "quarantine", "case_events"} <= kinds
        assert leaks_in(database) == []
    checkpointed = sqlite3.connect(database)
    checkpointed.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    checkpointed.close()
    on_disk = database.read_bytes()
    assert [s for s in personal_strings() | {DOCUMENT} if s.encode() in on_disk] == []


async def test_what_112_echoes_of_a_refused_push_reaches_no_ops_view(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, **TOKENS) as gw:
        await gw.sim.put("/_sim/mode", json={"mode": "reject", "reason": ECHO})
        status, body = await gw.post_report(unique(VALID_SAMPLES[0]))
        assert status == 202, body
        parked: list[dict[str, Any]] = []
        async with asyncio.timeout(20):
            while not parked:
                await asyncio.sleep(0.1)
                answer = await gw.client.get("/v1/ops/parked", headers=auth(OPS))
                parked = (await answer.json())["parked"]
        log = await gw.client.get("/v1/ops/deliveries", headers=auth(OPS))
        shown = json.dumps(parked) + await log.text()

        assert parked[0]["reason"].startswith("http_400: ")
        assert "ditolak" in parked[0]["reason"]
        assert [s for s in personal_strings() if s in shown] == []
    assert leaks_in(gw.settings.sqlite_path()) == []


async def test_a_second_key_rotates_old_rows_stay_readable(store_url: str) -> None:
    old_key, new_key = new_data_key("old"), new_data_key("new")
    before = sealed_report("2C1A")
    after = sealed_report("2C1B")

    store = await SqlStore.connect(store_url, sealer=Sealer.from_setting(old_key))
    try:
        await store.accept_report(before)
    finally:
        await store.close()

    rotated = await SqlStore.connect(store_url, sealer=Sealer.from_setting(f"{new_key},{old_key}"))
    try:
        assert await rotated.get_case(before.case.case_id) == before.case
        await rotated.accept_report(after)
        assert await rotated.get_case(after.case.case_id) == after.case
    finally:
        await rotated.close()

    sealed = dict(await query(store_url, "SELECT case_id, sealed FROM cases"))
    assert key_id_of(bytes(sealed[before.case.case_id])) == "old"
    assert key_id_of(bytes(sealed[after.case.case_id])) == "new"
    raws = dict(await query(store_url, "SELECT case_id, raw FROM reports"))
    assert key_id_of(bytes(raws[after.case.case_id])) == "new"

    new_only = await SqlStore.connect(store_url, sealer=Sealer.from_setting(new_key))
    try:
        assert await new_only.get_case(after.case.case_id) == after.case
        with pytest.raises(SealedDataUnreadable, match=r"'old'.*does not hold"):
            await new_only.get_case(before.case.case_id)
    finally:
        await new_only.close()


def sealed_key_ids(database: Path, opened_by: Sealer | None = None) -> dict[str, Counter[str]]:
    """The key ids of the values of every sealed column; with ``opened_by``, each value
    is opened too."""
    found = {}
    with sqlite3.connect(database) as conn:
        conn.row_factory = sqlite3.Row
        for column in sealed_columns.ALL:
            rows = conn.execute(
                f"SELECT * FROM {column.table} WHERE length({column.column}) > 0"  # noqa: S608
            ).fetchall()
            for row in rows:
                value = bytes(row[column.column])
                if opened_by is not None:
                    opened_by.open(value, column.aad(*(str(row[n]) for n in column.identity)))
            found[column.name] = Counter(key_id_of(bytes(row[column.column])) for row in rows)
    return found


async def reseal_cli(
    database: Path, keys: str, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """``gateway reseal`` on the database (in a thread: it runs its own loop)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{database}")
        env.setenv("GATEWAY_DATA_KEYS", keys)
        code = await asyncio.to_thread(cli.main, ["reseal", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def test_reseal_puts_every_sealed_value_under_the_new_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old_key, new_key = new_data_key("old"), new_data_key("new")
    async with running_gateway(tmp_path, data_keys=old_key, **TOKENS) as gw:
        await fill_every_table(gw)
        database = gw.settings.sqlite_path()
    sealed_cells = {(t, c) for t, c, raw in every_value(database) if raw.startswith(MAGIC)}
    assert sealed_cells == {(c.table, c.column) for c in sealed_columns.ALL}, "reseal sees all"
    before = sealed_key_ids(database)
    assert all(set(kids) == {"old"} for kids in before.values()), before

    code, out = await reseal_cli(database, new_key, capsys, "--check")
    assert code == 1
    assert "values sealed under old are left as they are" in out
    code, out = await reseal_cli(database, f"{new_key},{old_key}", capsys)
    assert code == 0, out
    assert "key ids in use: new" in out

    after = sealed_key_ids(database, opened_by=Sealer.from_setting(new_key))
    assert after == {name: Counter({"new": kids["old"]}) for name, kids in before.items()}
    assert leaks_in(database) == []
    code, out = await reseal_cli(database, new_key, capsys)
    assert code == 0, out
    assert out.count(": 0 resealed;") == len(sealed_columns.ALL)
    assert (await verify_cli(database, capsys))[0] == 0
    last = audit_rows(database)[-1]
    assert (last[1], last[2], last[3]) == ("cli", "gateway-reseal", audit.STORE_RESEALED)
    assert json.loads(last[5])["key_id"] == "new"


async def test_a_wrong_key_is_a_clear_error_not_garbage(store_url: str) -> None:
    report = sealed_report("2C1A")
    store = await SqlStore.connect(store_url, sealer=sealer_for_test())
    try:
        await store.accept_report(report)
    finally:
        await store.close()
    impostor = await SqlStore.connect(store_url, sealer=Sealer.from_setting(new_data_key("test1")))
    try:
        with pytest.raises(SealedDataUnreadable, match="'test1' does not open"):
            await impostor.case_snapshot(report.case.case_id)
    finally:
        await impostor.close()


def test_the_gateway_does_not_start_without_data_keys(tmp_path: Path) -> None:
    settings = Settings.model_validate({"database_url": f"sqlite:///{tmp_path / 'g.sqlite3'}"})
    with pytest.raises(ValueError, match="GATEWAY_DATA_KEYS is not set"):
        bootstrap.check_secrets(settings)
    broken = Settings.model_validate(
        {"database_url": f"sqlite:///{tmp_path / 'g.sqlite3'}", "data_keys": "k1:AAAA"}
    )
    with pytest.raises(ValueError, match="GATEWAY_DATA_KEYS: data key 'k1' must be 32 bytes"):
        bootstrap.check_secrets(broken)


def test_new_secret_makes_a_data_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["new-secret", "--data-key"]) == 0
    made = capsys.readouterr().out.strip()
    assert Sealer.from_setting(made).current_kid == made.split(":", 1)[0]
    assert cli.main(["new-secret", "--env"]) == 0
    env = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    Sealer.from_setting(env["DEV_DATA_KEYS"])


# --- retention ------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_purge_drops_personal_data_of_long_closed_cases_and_keeps_the_figures(
    tmp_path: Path,
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(t0)
    async with running_gateway(tmp_path, clock=clock, retention_days=30, **TOKENS) as gw:
        closed_id = await new_case(gw)
        open_id = await new_case(gw)
        await event(gw, open_id, "acknowledged")
        for kind, fields in (
            ("acknowledged", {}),
            ("reported_to_head", {}),
            ("team_assigned", {"team_id": "tim-3"}),
            ("team_departed", {}),
            ("follow_up_documented", {"documentation": [DOCUMENT]}),
            ("reported_to_head_final", {}),
        ):
            clock.now += timedelta(seconds=30)
            await event(gw, closed_id, kind, **fields)
        clock.now = t0 + timedelta(hours=1)
        span = (
            f"from={(t0 - timedelta(days=1)).isoformat()}&to={(t0 + timedelta(days=1)).isoformat()}"
        )
        span = span.replace("+", "%2B")
        sla_before = await get_json(gw, f"/v1/reports/sla?{span}", OPS)
        simfoni_before = await get_json(gw, f"/v1/exports/simfoni?{span}", SATGAS)
        assert len(simfoni_before["rows"]) == 1
        open_before = await get_json(gw, f"/v1/cases/{open_id}", SATGAS)
        closed_before = await get_json(gw, f"/v1/cases/{closed_id}", SATGAS)
        assert closed_before["case"]["victims"][0]["age"] == 41
        assert closed_before["case"]["narrative"]

        await rotated_partner_secret(gw.settings, overlap_until=t0 + timedelta(days=30))

        assert await bootstrap.purge_personal_data(gw.settings, now=t0 + timedelta(days=29)) == []
        assert await replaced_secret(gw.settings) == PARTNER_SECRET
        purged = await bootstrap.purge_personal_data(gw.settings, now=t0 + timedelta(days=31))
        assert purged == [closed_id]
        assert await replaced_secret(gw.settings) is None
        assert await bootstrap.purge_personal_data(gw.settings, now=t0 + timedelta(days=32)) == []

        assert await get_json(gw, f"/v1/reports/sla?{span}", OPS) == sla_before
        assert await get_json(gw, f"/v1/exports/simfoni?{span}", SATGAS) == simfoni_before
        assert await get_json(gw, f"/v1/cases/{open_id}", SATGAS) == open_before
        closed_after = await get_json(gw, f"/v1/cases/{closed_id}", SATGAS)
        assert closed_after["state"] == "closed"
        assert closed_after["steps"] == closed_before["steps"]
        victim = closed_after["case"]["victims"][0]
        assert "age" not in victim
        assert victim["sex"] == closed_before["case"]["victims"][0]["sex"]
        assert "narrative" not in closed_after["case"]
        documented = [h for h in closed_after["history"] if h["type"] == "follow_up_documented"]
        assert documented[0]["details"] == {}

        database = gw.settings.sqlite_path()
        with sqlite3.connect(database) as conn:
            rows = dict(conn.execute("SELECT case_id, sealed IS NULL FROM cases").fetchall())
            raws = dict(conn.execute("SELECT case_id, length(raw) FROM reports").fetchall())
            bodies = conn.execute(
                "SELECT length(body) FROM outbox WHERE case_id = ? AND published_at IS NOT NULL",
                (closed_id,),
            ).fetchall()
        assert rows == {closed_id: 1, open_id: 0}
        assert raws[closed_id] == 0
        assert raws[open_id] > 0
        assert bodies
        assert {length for (length,) in bodies} == {0}


PARTNER_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def rotated_partner_secret(settings: Settings, *, overlap_until: datetime) -> None:
    """A paused partner subscription (no worker, no push) whose secret was replaced."""
    store = await bootstrap.open_store(settings)
    try:
        at = overlap_until - timedelta(days=1)
        await store.add_subscription(
            Subscription(
                subscription_id="sub-rotated",
                agency_id="dinsos",
                role=RecipientRole.SOCIAL,
                patterns=("case.#",),
                mode=DeliveryMode.WEBHOOK,
                status=SubscriptionStatus.PAUSED,
                created_at=at,
                updated_at=at,
                url="https://partner.example/hook",
                secret=PARTNER_SECRET,
            ),
            by=audit.SYSTEM,
        )
        await store.rotate_subscription_secret(
            "sub-rotated", "whsec_" + "B" * 32, overlap_until, at, by=audit.SYSTEM
        )
    finally:
        await store.close()


async def replaced_secret(settings: Settings) -> str | None:
    store = await bootstrap.open_store(settings)
    try:
        subscription = await store.subscription("sub-rotated")
    finally:
        await store.close()
    assert subscription is not None
    return subscription.previous_secret


async def test_the_gateway_purges_by_itself_once_across_processes(tmp_path: Path) -> None:
    """Two gateway processes on one store purge on their own schedule: what is due goes,
    each case once, in the audit log under the system's retention, and a partner secret
    replaced and past its overlap is erased."""
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(t0)
    shared: dict[str, Any] = {
        "namespace": f"t{uuid.uuid4().hex[:10]}",
        "database_url": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "retention_days": 30,
        "purge_interval_s": 0.05,
        **TOKENS,
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_gateway(tmp_path / "a", clock=clock, **shared) as first,
        running_gateway(tmp_path / "b", clock=clock, **shared) as second,
    ):
        ended = [await new_case(first), await new_case(second)]
        for case_id in ended:
            await close(first, case_id)
        still_open = await new_case(first)
        database = first.settings.sqlite_path()
        await rotated_partner_secret(first.settings, overlap_until=t0 + timedelta(days=1))

        def sealed() -> dict[str, bool]:
            with sqlite3.connect(database) as conn:
                return {
                    case_id: bool(kept)
                    for case_id, kept in conn.execute(
                        "SELECT case_id, sealed IS NOT NULL FROM cases"
                    )
                }

        await asyncio.sleep(0.3)
        assert all(sealed().values()), "nothing is due within the retention period"
        assert await replaced_secret(first.settings) == PARTNER_SECRET, "the overlap goes on"
        clock.now = t0 + timedelta(days=31)

        async def purged() -> bool:
            return not any(sealed()[case_id] for case_id in ended)

        await eventually(purged, 10.0, "both ended cases purged")
        await asyncio.sleep(0.3)  # both processes have purged again meanwhile

    assert sealed() == {ended[0]: False, ended[1]: False, still_open: True}
    assert await replaced_secret(first.settings) is None
    purges = [row for row in audit_rows(database) if row[3] == audit.CASE_PURGED]
    assert sorted((role, actor, case_id) for _, role, actor, _, case_id, _ in purges) == sorted(
        ("system", "retention", case_id) for case_id in ended
    )


async def test_purges_running_at_once_purge_and_audit_each_case_once(
    tmp_path: Path, store_url: str
) -> None:
    """Both purges read the same candidates before either purges one."""
    t0 = datetime.now(UTC).replace(microsecond=0)
    async with running_gateway(
        tmp_path, database_url=store_url, purge_interval_s=0, retention_days=30, **TOKENS
    ) as gw:
        ended = [await new_case(gw) for _ in range(3)]
        for case_id in ended:
            await close(gw, case_id)
        stores = [await gw.store(), await gw.store()]
        try:
            runs = await asyncio.gather(
                *(
                    store.purge_personal_data(
                        ended_before=t0 + timedelta(days=1),
                        now=t0 + timedelta(days=31),
                        actor=audit.Actor("cli", f"purge-{n}"),
                    )
                    for n, store in enumerate(stores)
                )
            )
            rows = await stores[0].audit_rows()
        finally:
            for store in stores:
                await store.close()

    assert sorted(case_id for run in runs for case_id in run) == sorted(ended)
    purges = Counter(row.case_id for row in rows if row.action == audit.CASE_PURGED)
    assert purges == Counter(ended)


async def test_a_message_published_after_its_case_was_purged_is_emptied_next_time(
    tmp_path: Path, store_url: str
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    async with running_gateway(
        tmp_path, database_url=store_url, purge_interval_s=0, retention_days=30, **TOKENS
    ) as gw:
        case_id = await new_case(gw, VALID_SAMPLES[0])  # its message to 112 published
        assert (await event(gw, case_id, "closed"))["state"] == "closed"
    bodies = "SELECT length(body) FROM outbox WHERE case_id = ? ORDER BY id"
    waiting = "UPDATE outbox SET published_at = ? WHERE case_id = ?"
    await execute(store_url, waiting, (None, case_id))  # as if the broker had been away
    store = await SqlStore.connect(store_url, sealer=sealer_for_test())
    try:
        later = t0 + timedelta(days=31)

        async def purge() -> list[str]:
            cutoff = t0 + timedelta(days=1)
            return await store.purge_personal_data(
                ended_before=cutoff, now=later, actor=audit.SYSTEM
            )

        assert await purge() == [case_id]
        assert all(length > 0 for (length,) in await query(store_url, bodies, (case_id,)))
        await execute(store_url, waiting, (later.isoformat(), case_id))

        assert await purge() == []
        assert {length for (length,) in await query(store_url, bodies, (case_id,))} == {0}
    finally:
        await store.close()


# --- the audit log --------------------------------------------------------------------


def audit_rows(database: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as conn:
        return conn.execute(
            "SELECT seq, actor_role, actor_id, action, case_id, details FROM audit_log ORDER BY seq"
        ).fetchall()


async def verify_cli(database: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``gateway audit verify`` on the database (in a thread: it runs its own loop)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{database}")
        env.setenv("GATEWAY_DATA_KEYS", TEST_DATA_KEYS)
        code = await asyncio.to_thread(cli.main, ["audit", "verify"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def test_reads_of_personal_data_and_changes_are_audited_and_verified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_gateway(tmp_path, **TOKENS) as gw:
        case_id = await new_case(gw, "valid-01-app-basic.json")  # goes to 112
        answer = await event(
            gw, case_id, "status_report", report={"victim_status": "safe", "services": []}
        )
        await get_json(gw, f"/v1/cases/{case_id}", HEAD)
        await get_json(gw, f"/v1/cases/{case_id}", OPS)
        await gw.wait_for_sim(1, timeout_s=15)
        database = gw.settings.sqlite_path()
        rows = audit_rows(database)
    actions = [(role, actor_id, action, case) for _, role, actor_id, action, case, _ in rows]
    assert actions == [
        ("si-lacak-perak", None, audit.CASE_RECEIVED, case_id),
        ("satgas", "staff-7", audit.CASE_EVENT, case_id),
        # the answer to the event shows the case; a read names the token it came with
        ("satgas", token_fingerprint(SATGAS), audit.CASE_READ, case_id),
        ("head", token_fingerprint(HEAD), audit.CASE_READ, case_id),
    ], "ops saw no personal data, and the push to 112 is a delivery, not a read"
    assert json.loads(rows[1][5]) == {
        "state": answer["state"],
        "type": "status_report",
        "via": token_fingerprint(SATGAS),
    }
    assert [t for t in (SATGAS, HEAD, OPS) if t in json.dumps(rows)] == []
    assert [seq for seq, *_ in rows] == [1, 2, 3, 4]
    text = json.dumps(rows)
    assert [s for s in personal_strings() if s in text] == []

    code, said = await verify_cli(database, capsys)
    assert (code, said.strip()) == (0, "audit log intact: 4 rows")


@pytest.mark.parametrize(
    ("tamper", "bad_seq"),
    [
        ("UPDATE audit_log SET actor_role = 'ops' WHERE seq = 2", 2),
        ("UPDATE audit_log SET details = '{\"step\":1}' WHERE seq = 3", 3),
        ("DELETE FROM audit_log WHERE seq = 2", 2),
        ("DELETE FROM audit_log WHERE seq = 4", 4),
        ("DELETE FROM audit_head", 1),
    ],
    ids=["edited-actor", "edited-details", "deleted-middle", "deleted-last", "deleted-head"],
)
async def test_audit_verify_names_the_first_changed_or_removed_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tamper: str, bad_seq: int
) -> None:
    database = tmp_path / "audit.sqlite3"
    store = await SqlStore.open(database, sealer=sealer_for_test())
    try:
        at = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
        for n in range(4):
            await store.append_audit(
                audit.AuditEntry(
                    at=at + timedelta(minutes=n),
                    actor=audit.Actor("satgas", f"staff-{n}"),
                    action=audit.CASE_READ,
                    case_id="urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A",
                )
            )
    finally:
        await store.close()
    assert (await verify_cli(database, capsys))[0] == 0
    untouched = tmp_path / "copy.sqlite3"
    shutil.copy(database, untouched)

    with sqlite3.connect(database) as conn:
        conn.execute(tamper)
    code, said = await verify_cli(database, capsys)
    assert code == 1
    assert f"audit log broken at seq {bad_seq}:" in said
    assert (await verify_cli(untouched, capsys))[0] == 0


async def test_purge_is_audited_in_the_chain(tmp_path: Path) -> None:
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    async with running_gateway(tmp_path, clock=clock, retention_days=1, **TOKENS) as gw:
        case_id = await new_case(gw)
        await event(gw, case_id, "cancelled", reason="laporan ganda")
        now = clock.now + timedelta(days=2)
        assert await bootstrap.purge_personal_data(gw.settings, now=now) == [case_id]
        verdict = await bootstrap.verify_audit(gw.settings)
        rows = audit_rows(gw.settings.sqlite_path())
    assert verdict.ok
    assert verdict.count == len(rows)
    last = rows[-1]
    assert (last[1], last[2], last[3], last[4]) == (
        "cli",
        "gateway-purge",
        audit.CASE_PURGED,
        case_id,
    )
    assert json.loads(last[5])["state"] == "cancelled"
