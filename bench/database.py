"""A PostgreSQL database of the run's own on the local server, dropped when it ends (the
tests make theirs with the same two functions)."""

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


async def create_database(admin_url: str, prefix: str) -> str:
    """A new empty database on the server of ``admin_url``; answers its URL."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def drop_database(admin_url: str, url: str) -> None:
    """Drop the database of ``url``, sessions still on it included."""
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _autovacuum_on() -> bool:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        return bool(await admin.fetchval("SHOW autovacuum") == "on")
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[BenchDatabase]:
    """A new empty database, vacuumed and analysed as autovacuum would if the server's
    is off (statistics-free plans and dead rows would measure the server's settings,
    not the gateway); yields its URL."""
    autovacuum = await _autovacuum_on()
    database = BenchDatabase(await create_database(ADMIN_URL, "bench"), autovacuum)
    vacuum = None if autovacuum else asyncio.create_task(_vacuum_now_and_then(database.url))
    try:
        yield database
    finally:
        if vacuum is not None:
            vacuum.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await vacuum
        await drop_database(ADMIN_URL, database.url)


async def _vacuum_now_and_then(url: str) -> None:
    while True:
        await asyncio.sleep(VACUUM_EVERY_S)
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("VACUUM (ANALYZE)")
            finally:
                await conn.close()
