"""Re-sealing: every sealed value of the store opened and sealed again under the current
data key, so the keys before it can leave ``GATEWAY_DATA_KEYS`` (``gateway reseal``)."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from gateway import audit
from gateway.adapters.sealing import MAGIC, key_id_of
from gateway.adapters.sql_db import Row, Session
from gateway.adapters.store.audit import append_to_audit
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.sealed_columns import ALL, SealedColumn
from gateway.adapters.store.sql import fetch, transaction
from gateway.errors import SealedDataUnreadable

RESEAL_BATCH = 500


@dataclass(slots=True)
class SealedValues:
    """What one sealed column holds: its values by the key they are sealed under."""

    column: str
    under: Counter[str] = field(default_factory=Counter)  # keys of the setting open them
    unreadable: Counter[str] = field(default_factory=Counter)  # no key of the setting does
    resealed: int = 0
    empty: int = 0  # dropped by the retention purge
    plain: int = 0  # not sealed: written before sealing came (migration 0008)


class ResealSql(SqlBase):
    async def reseal(
        self, *, now: datetime, actor: audit.Actor, write: bool = True, batch: int = RESEAL_BATCH
    ) -> list[SealedValues]:
        """Seal every value not under the current key again under it, ``batch`` rows a
        write transaction (writers wait for each, so no row changes between its read and
        its rewrite); with ``write=False`` only count (opening each value all the same).
        Each batch that sealed anything again writes its audit row in its own transaction,
        so a run that stops halfway has recorded every value it changed. Values no key
        opens are counted and left as they are."""
        found = []
        for column in ALL:
            values = SealedValues(column.name)
            after: object = None
            while True:
                async with self._session() as conn:
                    written = transaction(conn) if write else contextlib.nullcontext()
                    async with written:
                        before = values.resealed
                        rows = await self._batch(conn, column, after, batch, values, write=write)
                        if values.resealed > before:
                            await append_to_audit(
                                conn,
                                audit.AuditEntry(
                                    at=now,
                                    actor=actor,
                                    action=audit.STORE_RESEALED,
                                    details={
                                        "key_id": self._sealer.current_kid,
                                        column.name: values.resealed - before,
                                    },
                                ),
                            )
                if len(rows) < batch:
                    break
                after = rows[-1][column.key]
            found.append(values)
        return found

    async def _batch(
        self,
        conn: Session,
        column: SealedColumn,
        after: object,
        batch: int,
        into: SealedValues,
        *,
        write: bool,
    ) -> list[Row]:
        """Count the values of the next ``batch`` rows by key id, opening each one not
        under the current key; with ``write``, seal those again under it."""
        current = self._sealer.current_kid
        rows = await _next_rows(conn, column, after, batch)
        rewrites: list[tuple[bytes, object]] = []
        for row in rows:
            value = bytes(row[column.column])
            if _not_sealed(value, into):
                continue
            kid = _key_id(value)
            if kid == current:
                into.under[kid] += 1
                continue
            aad = column.aad(*(str(row[name]) for name in column.identity))
            try:
                plain = self._sealer.open(value, aad)
            except SealedDataUnreadable:
                into.unreadable[kid] += 1
                continue
            if not write:
                into.under[kid] += 1
                continue
            rewrites.append((self._sealer.seal(plain, aad), row[column.key]))
            into.under[current] += 1
            into.resealed += 1
        if rewrites:
            await conn.run_many(
                f"UPDATE {column.table} SET {column.column} = ? WHERE {column.key} = ?",  # noqa: S608 - names from sealed_columns
                rewrites,
            )
        return rows


async def _next_rows(conn: Session, column: SealedColumn, after: object, batch: int) -> list[Row]:
    """The next ``batch`` rows holding a value, in key order, after the key ``after``."""
    names = ", ".join(dict.fromkeys((column.key, *column.identity, column.column)))
    where = f"{column.column} IS NOT NULL"
    params: tuple[object, ...] = (batch,)
    if after is not None:
        where += f" AND {column.key} > ?"
        params = (after, batch)
    return await fetch(
        conn,
        f"SELECT {names} FROM {column.table} WHERE {where} ORDER BY {column.key} LIMIT ?",  # noqa: S608 - names from sealed_columns
        params,
    )


def _not_sealed(value: bytes, into: SealedValues) -> bool:
    """Counts a value that is not sealed (emptied by a purge, or plain); answers whether
    it was one."""
    if not value:
        into.empty += 1
        return True
    if not value.startswith(MAGIC):
        into.plain += 1
        return True
    return False


def _key_id(value: bytes) -> str:
    try:
        return key_id_of(value)
    except SealedDataUnreadable:
        return "(malformed)"
