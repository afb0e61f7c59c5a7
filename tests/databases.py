"""The store's two databases for tests: a SQLite file in ``tmp_path``, or a PostgreSQL
database of its own on the machine's server, created for the test and dropped after
(the ``store_url`` fixture is in ``tests/conftest.py``)."""

import contextlib
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from gateway.adapters.sql_db import SQLITE_PREFIX, numbered_placeholders

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def create_postgres_database() -> str:
    """A new empty database; answers its URL."""
    name = f"t{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(POSTGRES_ADMIN_URL, name)


async def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


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


def sqlite_path(url: str) -> Path:
    assert url.startswith(SQLITE_PREFIX)
    return Path(url[len(SQLITE_PREFIX) :])
