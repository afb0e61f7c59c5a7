"""A PostgreSQL database of the run's own on the local server, dropped when it ends."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# What autovacuum would do for the gateway's queue-like tables (timers, outbox), when
# the server runs without it.
VACUUM_EVERY_S = 20.0


@dataclass
class BenchDatabase:
    url: str
    autovacuum: bool  # the server's own; without it the run vacuums every VACUUM_EVERY_S


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[BenchDatabase]:
    """A new empty database, vacuumed and analysed as autovacuum would if the server's
    is off (statistics-free plans and dead rows would measure the server's settings,
    not the gateway); yields its URL."""
    name = f"bench{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        autovacuum = await admin.fetchval("SHOW autovacuum") == "on"
    finally:
        await admin.close()
    database = BenchDatabase(ADMIN_URL.rsplit("/", 1)[0] + "/" + name, autovacuum)
    vacuum = None if autovacuum else asyncio.create_task(_vacuum_now_and_then(database.url))
    try:
        yield database
    finally:
        if vacuum is not None:
            vacuum.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await vacuum
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _vacuum_now_and_then(url: str) -> None:
    while True:
        await asyncio.sleep(VACUUM_EVERY_S)
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("VACUUM (ANALYZE)")
            finally:
                await conn.close()
