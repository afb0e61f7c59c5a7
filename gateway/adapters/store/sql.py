"""The few calls every store module makes: statements, reads and write transactions."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from gateway.adapters.sql_db import Row, Session


async def run(conn: Session, sql: str, params: Sequence[object] = ()) -> int:
    """Execute one statement; answers how many rows it changed."""
    return await conn.run(sql, params)


async def fetch(conn: Session, sql: str, params: Sequence[object] = ()) -> list[Row]:
    return await conn.rows(sql, params)


def transaction(
    conn: Session, *, durable: bool = True
) -> contextlib.AbstractAsyncContextManager[None]:
    """A write transaction, alone among writers; rolled back on any exception."""
    return conn.transaction(durable=durable)
