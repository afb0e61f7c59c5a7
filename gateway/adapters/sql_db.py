"""The two databases the store runs on, behind one small interface: SQLite (the embedded
default, Python's sqlite3 on the event loop's thread) and PostgreSQL (asyncpg).

The store writes one SQL: ``?`` placeholders, ISO-8601 UTC text times, ``ON CONFLICT``,
no engine-specific functions. What differs is kept here:

- placeholders: ``?`` become ``$1, $2 …`` for PostgreSQL;
- write transactions: SQLite's ``BEGIN IMMEDIATE`` takes the one write lock of the file;
  on PostgreSQL every write transaction takes one transaction-scoped advisory lock, so
  writers queue exactly as they do on SQLite, across any number of processes, and a
  read-decide-write step (claiming timers, outbox rows, a parked message) stays atomic;
- DDL: the migrations are written for SQLite and translated (``BLOB`` → ``BYTEA``,
  ``INTEGER`` → ``BIGINT``, ``INTEGER PRIMARY KEY AUTOINCREMENT`` → ``BIGSERIAL``);
- errors: each driver's errors come out as ``StoreUnavailable`` or ``IntegrityViolation``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

from gateway.errors import StoreUnavailable

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
# One lock for every write transaction of the gateway's tables (an arbitrary constant).
WRITE_LOCK_KEY = 0x6B647274


class IntegrityViolation(Exception):
    """A constraint refused the write (most often: the row is there already)."""


class Row(Protocol):
    def __getitem__(self, key: str | int, /) -> Any: ...


class Session(Protocol):
    """One connection, held alone by its user until the ``async with`` ends."""

    async def run(self, sql: str, params: Sequence[object] = ()) -> int:
        """Execute one statement; answers how many rows it changed."""
        ...

    async def run_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...

    def transaction(self, *, durable: bool = True) -> contextlib.AbstractAsyncContextManager[None]:
        """A write transaction, alone among writers; rolled back on any exception.

        ``durable=False`` is for bookkeeping that may be redone (which relay holds an
        outbox row, that a row was published): its commit does not wait for the disk, so
        a power cut may undo it, never half of it, and the next durable commit writes it.
        """
        ...


class Database(Protocol):
    dialect: str

    def session(self) -> contextlib.AbstractAsyncContextManager[Session]: ...

    async def close(self) -> None: ...


def is_supported_url(url: str) -> bool:
    return url.startswith(SQLITE_PREFIX) or url.startswith(POSTGRES_PREFIXES)


async def connect(url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 10) -> Database:
    """The database at ``url`` (``sqlite:///path`` or ``postgresql://…``)."""
    if url.startswith(SQLITE_PREFIX):
        return await SqliteDatabase.open(Path(url[len(SQLITE_PREFIX) :]), busy_timeout_ms)
    if url.startswith(POSTGRES_PREFIXES):
        return await PostgresDatabase.open(url, pool_size)
    raise ValueError(f"not a supported database URL: {url.split(':', 1)[0]}")


def translate_ddl(sql: str, dialect: str) -> str:
    """A migration written for SQLite, in the dialect's words."""
    if dialect == "sqlite":
        return sql
    sql = re.sub(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", "BIGSERIAL PRIMARY KEY", sql)
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    return re.sub(r"\bBLOB\b", "BYTEA", sql)


@functools.lru_cache(maxsize=512)
def numbered_placeholders(sql: str) -> str:
    """``?`` → ``$1, $2 …``, leaving quoted text alone."""
    out: list[str] = []
    number = 0
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        if char == "?" and not quoted:
            number += 1
            out.append(f"${number}")
        else:
            out.append(char)
    return "".join(out)


# ---- SQLite ----


def _sqlite_error(exc: sqlite3.Error) -> Exception:
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityViolation(str(exc))
    name = getattr(exc, "sqlite_errorname", type(exc).__name__)
    return StoreUnavailable(f"sqlite {name}: {exc}")


_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_BUSY_FIRST_WAIT_S = 0.001
_BUSY_MAX_WAIT_S = 0.05
CHECKPOINT_INTERVAL_S = 0.25
CHECKPOINT_RESTART_PAGES = 1000
RESTART_WAIT_S = 0.5

T = TypeVar("T")


class SqliteSession:
    """Statements run on the event loop's own thread: each takes microseconds (a commit
    with its fsync, well under a millisecond), less than a hop to a worker thread and
    back. What could block for long is waiting for another process's write lock, so the
    connection never waits inside SQLite (``busy_timeout`` 0): a busy database is
    retried here, asleep on the loop, for up to ``busy_timeout_s``."""

    def __init__(self, conn: sqlite3.Connection, busy_timeout_s: float) -> None:
        self._conn = conn
        self._busy_timeout_s = busy_timeout_s

    async def _call(self, work: Callable[[], T]) -> T:
        waited = 0.0
        wait = _BUSY_FIRST_WAIT_S
        while True:
            try:
                return work()
            except sqlite3.Error as exc:
                busy = getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES
                if not busy or waited >= self._busy_timeout_s:
                    raise _sqlite_error(exc) from exc
            await asyncio.sleep(wait)
            waited += wait
            wait = min(wait * 2, _BUSY_MAX_WAIT_S)

    async def run(self, sql: str, params: Sequence[object] = ()) -> int:
        def execute() -> int:
            cursor = self._conn.execute(sql, params)
            changed = cursor.rowcount
            cursor.close()
            return max(changed, 0)

        return await self._call(execute)

    async def run_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        batch = list(rows)

        def execute() -> None:
            self._conn.executemany(sql, batch).close()

        await self._call(execute)

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        def fetch() -> list[Row]:
            cursor = self._conn.execute(sql, params)
            try:
                return list(cursor.fetchall())
            finally:
                cursor.close()

        return await self._call(fetch)

    @contextlib.asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[None]:
        if not durable:
            await self.run("PRAGMA synchronous = NORMAL")
        try:
            await self.run("BEGIN IMMEDIATE")
            yield
            await self.run("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK").close()
            raise
        finally:
            if not durable:
                with contextlib.suppress(StoreUnavailable, ValueError):
                    await self.run("PRAGMA synchronous = FULL")


class WalCheckpointer:
    """Copies the write-ahead log back into the database file on a thread of its own.

    SQLite's automatic checkpoint runs inside whichever COMMIT crosses its threshold,
    on the event loop's thread: a thousand page writes and two fsyncs that every request
    in flight waits for. Here a second connection checkpoints every ``interval_s`` on
    a thread, ``PASSIVE`` (it neither waits for nor blocks the writer), and the loop
    runs on. A steady stream of writes can keep such checkpoints from ever reaching
    the end of the log, which then grows without bound; once it is past
    ``restart_pages``, the next round holds this process's writers back (``writers``,
    the lock every session takes) while a ``RESTART`` checkpoint finishes it.
    """

    def __init__(
        self, path: Path, writers: asyncio.Lock, interval_s: float, restart_pages: int
    ) -> None:
        self._conn = sqlite3.connect(
            path, isolation_level=None, timeout=RESTART_WAIT_S, check_same_thread=False
        )
        self._writers = writers
        self._interval_s = interval_s
        self._restart_pages = restart_pages
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._task = asyncio.create_task(self._run(), name="sqlite-checkpoint")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._interval_s)
            # Busy (another process checkpointing) or failing: the log only grows
            # until the next round.
            with contextlib.suppress(sqlite3.Error):
                log_pages = await loop.run_in_executor(self._thread, self._checkpoint, "PASSIVE")
                if log_pages > self._restart_pages:
                    async with self._writers:
                        await loop.run_in_executor(self._thread, self._checkpoint, "RESTART")

    def _checkpoint(self, mode: str) -> int:
        _, log_pages, _ = self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return int(log_pages)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._thread.shutdown(wait=True)
        self._conn.close()


class SqliteDatabase:
    """One file (WAL, ``synchronous=FULL``, foreign keys on) and one connection, used by
    one session at a time; other instances and processes may share the file, writers
    queueing on SQLite's lock up to ``busy_timeout_ms``. The log is checkpointed by a
    ``WalCheckpointer``, never inside a commit."""

    dialect = "sqlite"

    def __init__(
        self,
        conn: sqlite3.Connection,
        busy_timeout_s: float,
        path: Path,
        checkpoint_interval_s: float,
        checkpoint_restart_pages: int,
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._busy_timeout_s = busy_timeout_s
        self._lock = asyncio.Lock()
        self._checkpointer = WalCheckpointer(
            path, self._lock, checkpoint_interval_s, checkpoint_restart_pages
        )

    @classmethod
    async def open(
        cls,
        path: Path,
        busy_timeout_ms: int,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
        checkpoint_restart_pages: int = CHECKPOINT_RESTART_PAGES,
    ) -> SqliteDatabase:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the store's directory: {exc.strerror}") from exc
        busy_timeout_s = busy_timeout_ms / 1000
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=0)
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc
        conn.row_factory = sqlite3.Row
        session = SqliteSession(conn, busy_timeout_s)
        try:
            await session.run("PRAGMA busy_timeout = 0")
            await session.run("PRAGMA journal_mode = WAL")
            await session.run("PRAGMA synchronous = FULL")
            await session.run("PRAGMA foreign_keys = ON")
            await session.run("PRAGMA wal_autocheckpoint = 0")
            return cls(conn, busy_timeout_s, path, checkpoint_interval_s, checkpoint_restart_pages)
        except sqlite3.Error as exc:
            conn.close()
            raise _sqlite_error(exc) from exc
        except BaseException:
            conn.close()
            raise

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        async with self._lock:
            if self._conn is None:
                raise StoreUnavailable("the store is closed")
            yield SqliteSession(self._conn, self._busy_timeout_s)

    async def close(self) -> None:
        await self._checkpointer.stop()
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()


# ---- PostgreSQL ----

_POSTGRES_DOWN = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    asyncio.TimeoutError,
)


def _postgres_error(exc: Exception) -> Exception:
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityViolation(str(exc))
    code = getattr(exc, "sqlstate", None) or type(exc).__name__
    return StoreUnavailable(f"postgresql {code}: {exc}")


def _changed(status: str) -> int:
    """How many rows a command changed, from its status (``UPDATE 3``, ``INSERT 0 1``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresSession:
    def __init__(self, conn: asyncpg.pool.PoolConnectionProxy[Any]) -> None:
        self._conn = conn

    async def run(self, sql: str, params: Sequence[object] = ()) -> int:
        try:
            status = await self._conn.execute(numbered_placeholders(sql), *params)
        except _POSTGRES_DOWN as exc:
            raise _postgres_error(exc) from exc
        return _changed(status)

    async def run_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        try:
            await self._conn.executemany(numbered_placeholders(sql), list(rows))
        except _POSTGRES_DOWN as exc:
            raise _postgres_error(exc) from exc

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        try:
            return list(await self._conn.fetch(numbered_placeholders(sql), *params))
        except _POSTGRES_DOWN as exc:
            raise _postgres_error(exc) from exc

    @contextlib.asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[None]:
        try:
            await self.run("BEGIN")
            if not durable:
                await self.run("SET LOCAL synchronous_commit = off")
            await self.rows("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK_KEY,))
            yield
            await self.run("COMMIT")
        except BaseException:
            with contextlib.suppress(StoreUnavailable, IntegrityViolation):
                await self.run("ROLLBACK")
            raise


class PostgresDatabase:
    """A pool of connections; sessions run side by side, write transactions one at a
    time (see the module's docstring)."""

    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool: asyncpg.Pool[Any] | None = pool

    @classmethod
    async def open(cls, url: str, pool_size: int) -> PostgresDatabase:
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=pool_size, command_timeout=30
            )
        except _POSTGRES_DOWN as exc:
            raise _postgres_error(exc) from exc
        return cls(pool)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the store is closed")
        try:
            conn = await pool.acquire()
        except _POSTGRES_DOWN as exc:
            raise _postgres_error(exc) from exc
        try:
            yield PostgresSession(conn)
        finally:
            with contextlib.suppress(*_POSTGRES_DOWN):
                await pool.release(conn)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(*_POSTGRES_DOWN):
                await asyncio.wait_for(pool.close(), timeout=10)
