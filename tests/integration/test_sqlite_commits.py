"""SQLite commits wait for the disk on a thread of their own, off the event loop."""

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.adapters.sql_db import SqliteDatabase, SqliteSession

pytestmark = pytest.mark.integration


async def open_database(tmp_path: Path) -> SqliteDatabase:
    database = await SqliteDatabase.open(tmp_path / "commits.sqlite3", busy_timeout_ms=1000)
    async with database.session() as session, session.transaction():
        await session.run("CREATE TABLE t (n INTEGER)")
    return database


async def test_a_commit_runs_off_the_loop_thread_and_is_durable(tmp_path: Path) -> None:
    database = await open_database(tmp_path)
    commit_threads: list[str] = []
    original = SqliteSession._on_commit_thread

    async def spy(self: SqliteSession, work: Callable[[], object]) -> object:
        def traced() -> object:
            commit_threads.append(threading.current_thread().name)
            return work()

        return await original(self, traced)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(SqliteSession, "_on_commit_thread", spy)
            async with database.session() as session, session.transaction():
                await session.run("INSERT INTO t (n) VALUES (1)")
    finally:
        await database.close()

    assert commit_threads
    assert all(name.startswith("sqlite-commit") for name in commit_threads)
    with sqlite3.connect(tmp_path / "commits.sqlite3") as reader:
        assert reader.execute("SELECT n FROM t").fetchall() == [(1,)]


async def test_a_cancelled_commit_still_holds_the_connection_until_the_thread_is_done(
    tmp_path: Path,
) -> None:
    database = await open_database(tmp_path)
    release = threading.Event()
    started = threading.Event()

    def slow_disk() -> str:
        started.set()
        release.wait(timeout=10)
        return "committed"

    try:
        async with database.session() as session:
            assert isinstance(session, SqliteSession)
            waiting = asyncio.create_task(session._on_commit_thread(slow_disk))
            while not started.is_set():  # noqa: ASYNC110 - a thread, not a coroutine, sets it
                await asyncio.sleep(0.005)
            waiting.cancel()
            await asyncio.sleep(0.1)
            assert not waiting.done(), "the connection was handed back while the thread used it"

            release.set()
            with pytest.raises(asyncio.CancelledError):
                await waiting
    finally:
        release.set()
        await database.close()
