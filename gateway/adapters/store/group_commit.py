"""Group commit: writes asked for while a write transaction is being set up share it.

A busy gateway takes many reports in one turn of the event loop. Written one
transaction each, every report pays its own COMMIT: the log pages and an fsync. Here
they share one; each is written in a savepoint of its own, so a refused write (a
constraint) is undone alone and answered alone. Nobody is answered before the shared
COMMIT: every answer is as durable as a transaction of its own would have made it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar, cast

from gateway.adapters.sql_db import Session
from gateway.adapters.store.sql import run, transaction

Item = TypeVar("Item")
Result = TypeVar("Result")

Write = Callable[[Session, Item], Awaitable[Result]]
Undone = Callable[[Session, Item, Exception], Awaitable[Result]]


@contextlib.asynccontextmanager
async def savepoint(conn: Session) -> AsyncIterator[None]:
    """Inside a write transaction: what the block wrote is undone alone if it raises."""
    await run(conn, "SAVEPOINT one_write")
    try:
        yield
    except BaseException:
        await run(conn, "ROLLBACK TO SAVEPOINT one_write")
        await run(conn, "RELEASE SAVEPOINT one_write")
        raise
    await run(conn, "RELEASE SAVEPOINT one_write")


class GroupCommit(Generic[Item, Result]):
    """``submit(item)`` writes ``item`` with ``write`` in a transaction shared with the
    items submitted meanwhile. An item whose write raises ``refused`` is undone alone
    and answered by ``undone`` (in the same transaction; what that raises is this
    item's answer alone); any other failure fails the whole group. An item whose
    submitter is cancelled before the write lock is taken is not written."""

    def __init__(
        self,
        session: Callable[[], contextlib.AbstractAsyncContextManager[Session]],
        write: Write[Item, Result],
        *,
        refused: type[Exception],
        undone: Undone[Item, Result],
    ) -> None:
        self._session = session
        self._write = write
        self._refused = refused
        self._undone = undone
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_all(), name="group-commit")
        return await answer

    async def _commit_all(self) -> None:
        while self._waiting:
            group: list[tuple[Item, asyncio.Future[Result]]] = []
            try:
                async with self._session() as conn, transaction(conn):
                    group = [(i, a) for i, a in self._waiting if not a.cancelled()]
                    self._waiting = []
                    outcomes = [await self._write_one(conn, item) for item, _ in group]
            except Exception as exc:  # noqa: BLE001 — each submitter gets the failure
                group = group or self._take_all()
                for _, answer in group:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            for (_, answer), (result, failure) in zip(group, outcomes, strict=True):
                if answer.done():
                    continue
                if failure is None:
                    answer.set_result(cast(Result, result))
                else:
                    answer.set_exception(failure)

    async def _write_one(self, conn: Session, item: Item) -> tuple[Result | None, Exception | None]:
        """This item's result or its own failure (its refusal's, as ``undone`` answers it)."""
        try:
            async with savepoint(conn):
                return await self._write(conn, item), None
        except self._refused as refusal:
            try:
                return await self._undone(conn, item, refusal), None
            except Exception as failure:  # noqa: BLE001 — this submitter's answer alone
                return None, failure

    def _take_all(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        group, self._waiting = self._waiting, []
        return group
