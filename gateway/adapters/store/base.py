"""What every part of the store stands on: the open database and the sealer of
personal data; opening (with the schema brought up to date), pinging, closing."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Self

from gateway.adapters.sealing import Sealer
from gateway.adapters.sql_db import Database, IntegrityViolation, Session, connect
from gateway.adapters.store.group_commit import GroupCommit
from gateway.adapters.store.schema import apply_migrations, load_migrations
from gateway.adapters.store.sql import fetch


class SqlBase:
    """The database and the sealer each store area uses, through ``_session``,
    ``_durable_writes`` and ``_sealer`` only."""

    def __init__(self, db: Database, sealer: Sealer) -> None:
        """Use ``connect`` (or ``open``); this takes a database whose schema is current."""
        self._db = db
        self._sealer = sealer

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @classmethod
    async def connect(cls, url: str, *, sealer: Sealer, busy_timeout_ms: int = 5000) -> Self:
        """Open (creating if needed) the database at ``url`` and bring its schema up to date."""
        db = await connect(url, busy_timeout_ms=busy_timeout_ms)
        try:
            async with db.session() as conn:
                await apply_migrations(conn, load_migrations(), db.dialect)
        except BaseException:
            await db.close()
            raise
        return cls(db, sealer)

    @classmethod
    async def open(cls, path: Path, *, sealer: Sealer, busy_timeout_ms: int = 5000) -> Self:
        """The SQLite file at ``path``."""
        return await cls.connect(
            f"sqlite:///{path}", sealer=sealer, busy_timeout_ms=busy_timeout_ms
        )

    @functools.cached_property
    def _durable_writes(self) -> GroupCommit:
        """Durable writes that may share a transaction with others (see ``GroupCommit``)."""
        return GroupCommit(self._session, refused=IntegrityViolation)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[Session]:
        async with self._db.session() as conn:
            yield conn

    async def ping(self) -> None:
        async with self._session() as conn:
            await fetch(conn, "SELECT 1")

    async def close(self) -> None:
        await self._db.close()
