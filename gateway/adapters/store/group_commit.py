"""Group commit: durable writes asked for while a write transaction is being set up
share it.

A busy gateway takes many reports, and settles many deliveries, in one turn of the
event loop. Written one transaction each, every one pays its own COMMIT: the log pages
and an fsync. Here they share one; each is written in a savepoint of its own, so a
write that a constraint refuses is undone alone and answered alone. Nobody is
answered before the shared COMMIT: every answer is as durable as a transaction of its
own would have made it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.adapters.sql_db import Session
from gateway.adapters.store.sql import run, transaction

R = TypeVar("R")

Write = Callable[[Session], Awaitable[R]]
IfRefused = Callable[[Session, Exception], Awaitable[R]]


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


@dataclass(frozen=True, slots=True)
class _Asked:
    write: Write[Any]
    if_refused: IfRefused[Any] | None
    answer: asyncio.Future[Any]


class GroupCommit:
    """``submit(write)`` runs ``write`` in a transaction shared with the writes submitted
    meanwhile. A write that raises ``refused`` is undone alone and answered by its
    ``if_refused`` (in the same transaction) or with the refusal; what ``if_refused``
    raises is its submitter's answer alone. Any other failure fails the whole group. A
    write whose submitter is cancelled before the write lock is taken is not run."""

    def __init__(
        self,
        session: Callable[[], contextlib.AbstractAsyncContextManager[Session]],
        *,
        refused: type[Exception],
    ) -> None:
        self._session = session
        self._refused = refused
        self._waiting: list[_Asked] = []
        self._committer: asyncio.Task[None] | None = None

    async def submit(self, write: Write[R], if_refused: IfRefused[R] | None = None) -> R:
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Asked(write, if_refused, answer))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_all(), name="group-commit")
        return await answer

    async def _commit_all(self) -> None:
        while self._waiting:
            group: list[_Asked] = []
            try:
                async with self._session() as conn, transaction(conn):
                    group = [asked for asked in self._waiting if not asked.answer.cancelled()]
                    self._waiting = []
                    outcomes = [await self._run_one(conn, asked) for asked in group]
            except Exception as exc:  # noqa: BLE001 — each submitter gets the failure
                group = group or self._take_all()
                for asked in group:
                    if not asked.answer.done():
                        asked.answer.set_exception(exc)
                continue
            for asked, (result, failure) in zip(group, outcomes, strict=True):
                if asked.answer.done():
                    continue
                if failure is None:
                    asked.answer.set_result(result)
                else:
                    asked.answer.set_exception(failure)

    async def _run_one(self, conn: Session, asked: _Asked) -> tuple[Any, Exception | None]:
        """This write's result, or its own failure (its refusal, or what ``if_refused``
        makes of it)."""
        try:
            async with savepoint(conn):
                return await asked.write(conn), None
        except self._refused as refusal:
            if asked.if_refused is None:
                return None, refusal
            try:
                return await asked.if_refused(conn, refusal), None
            except Exception as failure:  # noqa: BLE001 — this submitter's answer alone
                return None, failure

    def _take_all(self) -> list[_Asked]:
        group, self._waiting = self._waiting, []
        return group
