"""Re-sealing personal data under the current key (``gateway reseal``), on both
databases."""

import json
from collections import Counter
from datetime import UTC, datetime

import pytest
from databases import execute, query
from samples import sealed_report

from gateway import audit
from gateway.adapters.sealing import Sealer, key_id_of, new_data_key, parse_keys
from gateway.adapters.store import SqlStore
from gateway.adapters.store.reseal import RESEAL_BATCH, SealedValues
from gateway.adapters.store.sealed_columns import CASES, QUARANTINE, REPORTS
from gateway.model import AcceptedReport, QuarantinedInput

pytestmark = pytest.mark.integration

OLD, NEW = new_data_key("old"), new_data_key("new")
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
ACTOR = audit.Actor("cli", "test")


def report(n: int) -> AcceptedReport:
    return sealed_report(f"2C{n:02d}")


async def written_under_old(store_url: str, cases: int) -> None:
    store = await SqlStore.connect(store_url, sealer=Sealer.from_setting(OLD))
    try:
        for n in range(cases):
            await store.accept_report(report(n))
        await store.quarantine(
            QuarantinedInput(received_at=NOW, source="si-lacak-perak", reason="x", raw=b"{bad")
        )
    finally:
        await store.close()


async def key_ids(store_url: str) -> dict[str, Counter[str]]:
    found = {}
    for column in (CASES, REPORTS, QUARANTINE):
        values = await query(store_url, f"SELECT {column.column} FROM {column.table}")  # noqa: S608
        found[column.name] = Counter(key_id_of(bytes(v)) for (v,) in values if v)
    return found


async def reseal(
    store_url: str, keys: str, *, write: bool = True, batch: int = RESEAL_BATCH
) -> dict[str, SealedValues]:
    store = await SqlStore.connect(store_url, sealer=Sealer.from_setting(keys))
    try:
        found = await store.reseal(now=NOW, actor=ACTOR, write=write, batch=batch)
    finally:
        await store.close()
    return {values.column: values for values in found}


async def resealed_audit_rows(store_url: str) -> list[tuple[object, ...]]:
    return await query(
        store_url, "SELECT details FROM audit_log WHERE action = ?", (audit.STORE_RESEALED,)
    )


async def audited_reseals(store_url: str, key_id: str = "new") -> Counter[str]:
    """The values the audit log says were sealed again under ``key_id``, per column."""
    audited: Counter[str] = Counter()
    for (details,) in await resealed_audit_rows(store_url):
        counts = json.loads(str(details))
        assert counts.pop("key_id") == key_id
        audited.update(counts)
    return audited


class SealerThatStops(Sealer):
    """Seals ``seals`` values, then fails (a run stopped halfway)."""

    def __init__(self, keys: str, seals: int) -> None:
        super().__init__(parse_keys(keys))
        self.seals_left = seals

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        if self.seals_left == 0:
            raise RuntimeError("stopped")
        self.seals_left -= 1
        return super().seal(plain, aad)


async def test_a_reseal_stopped_halfway_has_audited_every_value_it_changed(
    store_url: str,
) -> None:
    await written_under_old(store_url, cases=5)
    store = await SqlStore.connect(store_url, sealer=SealerThatStops(f"{NEW},{OLD}", seals=3))
    try:
        with pytest.raises(RuntimeError, match="stopped"):
            await store.reseal(now=NOW, actor=ACTOR, batch=2)
    finally:
        await store.close()

    assert (await key_ids(store_url))["cases.sealed"] == {"new": 2, "old": 3}
    assert await audited_reseals(store_url) == Counter({"cases.sealed": 2})


async def test_reseal_moves_every_value_to_the_first_key_in_batches(store_url: str) -> None:
    await written_under_old(store_url, cases=5)

    counted = await reseal(store_url, f"{NEW},{OLD}", write=False)
    assert counted["cases.sealed"].under == {"old": 5}
    assert counted["cases.sealed"].resealed == 0
    assert (await key_ids(store_url))["cases.sealed"] == {"old": 5}, "counting writes nothing"

    done = await reseal(store_url, f"{NEW},{OLD}", batch=2)
    assert {name: v.resealed for name, v in done.items() if v.resealed} == {
        "cases.sealed": 5,
        "reports.raw": 5,
        "quarantine.raw": 1,
    }
    assert await key_ids(store_url) == {
        "cases.sealed": {"new": 5},
        "reports.raw": {"new": 5},
        "quarantine.raw": {"new": 1},
    }
    audited = await audited_reseals(store_url)
    assert audited == Counter({"cases.sealed": 5, "reports.raw": 5, "quarantine.raw": 1})
    assert len(await resealed_audit_rows(store_url)) == 7, "one row per batch (of 2 rows)"

    again = await reseal(store_url, f"{NEW},{OLD}")
    assert sum(v.resealed for v in again.values()) == 0
    assert await audited_reseals(store_url) == audited, "a run that changed nothing"

    new_only = await SqlStore.connect(store_url, sealer=Sealer.from_setting(NEW))
    try:
        for n in range(5):
            assert await new_only.get_case(report(n).case.case_id) == report(n).case
    finally:
        await new_only.close()


async def test_values_no_key_opens_are_counted_and_left_alone(store_url: str) -> None:
    await written_under_old(store_url, cases=3)
    before = await query(store_url, "SELECT case_id, sealed FROM cases ORDER BY case_id")

    found = await reseal(store_url, NEW, batch=2)

    assert found["cases.sealed"].unreadable == {"old": 3}
    assert found["cases.sealed"].resealed == 0
    assert await query(store_url, "SELECT case_id, sealed FROM cases ORDER BY case_id") == before
    assert await resealed_audit_rows(store_url) == []


async def test_purged_values_are_counted_not_sealed(store_url: str) -> None:
    await written_under_old(store_url, cases=2)
    purged = report(0).case.case_id
    await execute(store_url, "UPDATE reports SET raw = ? WHERE case_id = ?", (b"", purged))

    found = await reseal(store_url, f"{NEW},{OLD}")

    assert (found["reports.raw"].empty, found["reports.raw"].resealed) == (1, 1)
