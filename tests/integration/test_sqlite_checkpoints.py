"""SQLite's write-ahead log is copied back into the database file by a thread of the
store's own, never inside a commit on the event loop's thread."""

import asyncio
import os
import time
from pathlib import Path

from gateway.adapters.sql_db import SqliteDatabase

ROW = os.urandom(16_000)


async def write_rows(db: SqliteDatabase, count: int) -> None:
    for _ in range(count):
        async with db.session() as conn, conn.transaction():
            await conn.run("INSERT INTO blobs (data) VALUES (?)", (ROW,))
        await asyncio.sleep(0)  # as a busy gateway would, between requests


async def open_with_table(path: Path, **checkpoints: float) -> SqliteDatabase:
    db = await SqliteDatabase.open(path, 5000, **checkpoints)  # type: ignore[arg-type]
    async with db.session() as conn, conn.transaction():
        await conn.run("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
    return db


async def test_commits_do_not_checkpoint_and_the_checkpointer_does(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    db = await open_with_table(path, checkpoint_interval_s=0.05)
    try:
        async with db.session() as conn:
            assert [r[0] for r in await conn.rows("PRAGMA wal_autocheckpoint")] == [0]

        await write_rows(db, 100)  # 1.6 MB, all of it in the log at first

        deadline = time.monotonic() + 10
        while path.stat().st_size < 1_500_000:
            assert time.monotonic() < deadline, "the log was never copied into the file"
            await asyncio.sleep(0.05)
    finally:
        await db.close()


async def test_a_steady_stream_of_writes_cannot_grow_the_log_without_bound(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    wal = tmp_path / "store.sqlite3-wal"
    db = await open_with_table(path, checkpoint_interval_s=0.01, checkpoint_restart_pages=200)
    try:
        largest = 0
        for _ in range(40):
            await write_rows(db, 50)  # 0.8 MB a round, 32 MB in all
            largest = max(largest, wal.stat().st_size)
        assert largest < 12_000_000
    finally:
        await db.close()
