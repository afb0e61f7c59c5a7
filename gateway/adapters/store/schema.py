"""The schema: the numbered migrations of ``MIGRATIONS_PACKAGE``, applied once each and
in order; written for SQLite, translated for PostgreSQL by ``sql_db``."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from gateway.adapters.sql_db import Session, translate_ddl
from gateway.adapters.store.sql import fetch, run, transaction
from gateway.adapters.store.time_text import to_text

MIGRATIONS_PACKAGE = "gateway.adapters.migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """The numbered ``NNNN_name.sql`` files of ``package``, in version order."""
    found: dict[int, Migration] = {}
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(
                f"two migrations numbered {version}: {found[version].name}, {entry.name}"
            )
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Cut a script into single statements (sqlite3 executes one at a time in a transaction)."""
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    leftover = [ln for ln in pending.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    if leftover:
        raise ValueError("migration ends with an incomplete statement")
    return statements


async def apply_migrations(conn: Session, migrations: Iterable[Migration], dialect: str) -> None:
    async with transaction(conn):
        await run(
            conn,
            translate_ddl(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                dialect,
            ),
        )
    applied = {row[0] for row in await fetch(conn, "SELECT version FROM schema_migrations")}
    for migration in migrations:
        if migration.version in applied:
            continue
        async with transaction(conn):
            # Another process may have applied it while we waited for the write lock.
            again = await fetch(
                conn, "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            )
            if again:
                continue
            for statement in split_statements(migration.sql):
                await run(conn, translate_ddl(statement, dialect))
            await run(
                conn,
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, to_text(datetime.now(UTC))),
            )
