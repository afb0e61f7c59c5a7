"""Group commit: what is submitted together is written in one transaction, each write
in a savepoint of its own, and every submitter is answered after the commit."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

import pytest

from gateway.adapters.sql_db import IntegrityViolation, Row, Session
from gateway.adapters.store.group_commit import GroupCommit
from gateway.errors import StoreUnavailable


class Journal:
    """A database that only writes down what it is asked to do."""

    def __init__(self, *, commit_fails: bool = False) -> None:
        self.statements: list[str] = []
        self.commit_fails = commit_fails

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        await asyncio.sleep(0)
        yield JournalSession(self)


class JournalSession:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def run(self, sql: str, params: Sequence[object] = ()) -> int:
        self._journal.statements.append(sql)
        return 1

    async def run_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self._journal.statements.append(sql)

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        self._journal.statements.append(sql)
        return []

    @contextlib.asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[None]:
        self._journal.statements.append("BEGIN")
        try:
            yield
        except BaseException:
            self._journal.statements.append("ROLLBACK")
            raise
        if self._journal.commit_fails:
            self._journal.statements.append("ROLLBACK")
            raise StoreUnavailable("disk full")
        self._journal.statements.append("COMMIT")


def writing(item: str) -> Callable[[Session], Awaitable[str]]:
    async def write(conn: Session) -> str:
        if item.startswith("refused"):
            raise IntegrityViolation(item)
        if item.startswith("broken"):
            raise StoreUnavailable(item)
        await conn.run(f"INSERT {item}")
        return f"wrote {item}"

    return write


async def undone(conn: Session, refusal: Exception) -> str:
    await conn.run("SELECT what was there")
    if "unexplained" in str(refusal):
        raise StoreUnavailable(str(refusal))
    return f"undid {refusal}"


class Group:
    def __init__(self, journal: Journal) -> None:
        self._commits = GroupCommit(journal.session, refused=IntegrityViolation)

    async def submit(self, item: str) -> str:
        return await self._commits.submit(writing(item), undone)


def group(journal: Journal) -> Group:
    return Group(journal)


async def test_writes_submitted_together_share_one_transaction() -> None:
    journal = Journal()
    commits = group(journal)

    answers = await asyncio.gather(*(commits.submit(f"r{i}") for i in range(5)))

    assert answers == [f"wrote r{i}" for i in range(5)]
    assert journal.statements.count("BEGIN") == 1
    assert journal.statements.count("COMMIT") == 1
    assert journal.statements[-1] == "COMMIT"


async def test_a_refused_write_is_undone_and_answered_alone() -> None:
    journal = Journal()
    commits = group(journal)

    answers = await asyncio.gather(
        commits.submit("r1"),
        commits.submit("refused"),
        commits.submit("refused unexplained"),
        commits.submit("r2"),
        return_exceptions=True,
    )

    assert list(answers[:2]) == ["wrote r1", "undid refused"]
    assert isinstance(answers[2], StoreUnavailable)
    assert answers[3] == "wrote r2"
    assert journal.statements == [
        "BEGIN",
        "SAVEPOINT one_write",
        "INSERT r1",
        "RELEASE SAVEPOINT one_write",
        "SAVEPOINT one_write",
        "ROLLBACK TO SAVEPOINT one_write",
        "RELEASE SAVEPOINT one_write",
        "SELECT what was there",
        "SAVEPOINT one_write",
        "ROLLBACK TO SAVEPOINT one_write",
        "RELEASE SAVEPOINT one_write",
        "SELECT what was there",
        "SAVEPOINT one_write",
        "INSERT r2",
        "RELEASE SAVEPOINT one_write",
        "COMMIT",
    ]


@pytest.mark.parametrize("commit_fails", [True, False])
async def test_when_the_transaction_fails_every_submitter_gets_the_failure(
    commit_fails: bool,
) -> None:
    journal = Journal(commit_fails=commit_fails)
    commits = group(journal)
    items = ["r1", "r2"] if commit_fails else ["r1", "broken", "r2"]

    answers = await asyncio.gather(*(commits.submit(i) for i in items), return_exceptions=True)

    assert len(answers) == len(items)
    assert all(isinstance(a, StoreUnavailable) for a in answers)
    assert "COMMIT" not in journal.statements
    journal.commit_fails = False
    assert await commits.submit("later") == "wrote later"  # the next group commits


async def test_nobody_is_answered_before_the_commit() -> None:
    journal = Journal()
    commits = group(journal)
    answered_after: list[list[str]] = []

    async def submit(item: str) -> None:
        await commits.submit(item)
        answered_after.append(list(journal.statements))

    await asyncio.gather(submit("r1"), submit("r2"))

    assert [statements[-1] for statements in answered_after] == ["COMMIT", "COMMIT"]


async def test_a_submitter_cancelled_before_the_write_lock_is_not_written() -> None:
    journal = Journal()
    commits = group(journal)

    cancelled = asyncio.create_task(commits.submit("gone"))
    kept = asyncio.create_task(commits.submit("kept"))
    await asyncio.sleep(0)
    cancelled.cancel()

    assert await kept == "wrote kept"
    assert "INSERT gone" not in journal.statements
    with pytest.raises(asyncio.CancelledError):
        await cancelled


async def test_a_refusal_without_an_answer_for_it_is_its_writes_answer() -> None:
    commits = GroupCommit(Journal().session, refused=IntegrityViolation)

    answers = await asyncio.gather(
        commits.submit(writing("refused")), commits.submit(writing("r1")), return_exceptions=True
    )

    assert isinstance(answers[0], IntegrityViolation)
    assert answers[1] == "wrote r1"


async def test_writes_submitted_during_a_commit_form_the_next_group() -> None:
    journal = Journal()
    commits = group(journal)
    first = asyncio.create_task(commits.submit("r1"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first group holds its session now

    answers = await asyncio.gather(first, commits.submit("r2"), commits.submit("r3"))

    assert list(answers) == ["wrote r1", "wrote r2", "wrote r3"]
    assert journal.statements.count("COMMIT") == 2
