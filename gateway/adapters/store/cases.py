"""Cases: their S0/S1 part kept plain (for queries and after a purge) beside the whole
case sealed."""

from __future__ import annotations

from contracts.case import Case
from gateway import retention
from gateway.adapters.sealing import Sealer
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.sealed_columns import CASES
from gateway.adapters.store.sql import fetch


def case_columns(case: Case, sealer: Sealer) -> tuple[str, bytes]:
    """``data`` (the S0/S1 part, plain) and ``sealed`` (the whole case)."""
    return (
        retention.public_part(case).model_dump_json(),
        sealer.seal(case.model_dump_json().encode(), CASES.aad(case.case_id)),
    )


def case_of(case_id: str, data: str, sealed: bytes | None, sealer: Sealer) -> Case:
    """The whole case while it is sealed beside its S0/S1 part; after a purge, that part."""
    if sealed is None:
        return Case.model_validate_json(data)
    return Case.model_validate_json(sealer.open(bytes(sealed), CASES.aad(case_id)))


class CaseSql(SqlBase):
    async def get_case(self, case_id: str) -> Case | None:
        async with self._session() as conn:
            rows = await fetch(conn, "SELECT data, sealed FROM cases WHERE case_id = ?", (case_id,))
        return case_of(case_id, rows[0]["data"], rows[0]["sealed"], self._sealer) if rows else None

    async def count_cases(self) -> int:
        async with self._session() as conn:
            rows = await fetch(conn, "SELECT COUNT(*) FROM cases")
        return int(rows[0][0])
