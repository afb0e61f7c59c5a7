"""The store's two databases for tests: a SQLite file in ``tmp_path``, or a PostgreSQL
database of its own on the machine's server, created for the test and dropped after
(the ``store_url`` fixture is in ``tests/conftest.py``)."""

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

from bench.database import create_database, drop_database
from gateway.adapters.sql_db import SQLITE_PREFIX, numbered_placeholders

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")


async def create_postgres_database() -> str:
    """A new empty database; answers its URL."""
    return await create_database(POSTGRES_ADMIN_URL, "t")


async def drop_postgres_database(url: str) -> None:
    await drop_database(POSTGRES_ADMIN_URL, url)


async def query(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the database with a connection of its own, as an operator would."""
    if url.startswith(SQLITE_PREFIX):
        with contextlib.closing(sqlite3.connect(sqlite_path(url))) as db:
            return db.execute(sql, params).fetchall()
    pg = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await pg.fetch(numbered_placeholders(sql), *params)]
    finally:
        await pg.close()


async def execute(url: str, sql: str, params: tuple[object, ...] = ()) -> None:
    """Change the database with a connection of its own, as an operator would."""
    if url.startswith(SQLITE_PREFIX):
        with contextlib.closing(sqlite3.connect(sqlite_path(url))) as db, db:
            db.execute(sql, params)
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute(numbered_placeholders(sql), *params)
    finally:
        await pg.close()


def sqlite_path(url: str) -> Path:
    assert url.startswith(SQLITE_PREFIX)
    return Path(url[len(SQLITE_PREFIX) :])
