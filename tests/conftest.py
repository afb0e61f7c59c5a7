"""Shared fixtures. Tests build their settings explicitly and never read the developer's env."""

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from databases import BACKENDS, create_postgres_database, drop_postgres_database
from log_scan import RUN_SCAN

from gateway.adapters.sql_db import SQLITE_PREFIX
from gateway.logs import configure_logging


@pytest.fixture(autouse=True)
def _no_gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty store database, once per backend."""
    if request.param == "sqlite":
        yield f"{SQLITE_PREFIX}{tmp_path / 'state' / 'gateway.sqlite3'}"
        return
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


# --- Whole-run log scan (issue 7): no log line of the run may carry fixture personal data ---


@pytest.fixture(autouse=True)
def _logs_go_through_the_scan() -> None:
    configure_logging(json=True, level="debug", stream=RUN_SCAN)


# With pytest-xdist each worker scans its own lines and hands what leaked to the controller.
_LEAKS_FROM_WORKERS: list[str] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    _LEAKS_FROM_WORKERS.extend(getattr(node, "workeroutput", {}).get("log_leaks", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = RUN_SCAN.report() + _LEAKS_FROM_WORKERS
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output["log_leaks"] = leaks
        return
    if not leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("=", f"personal data in {len(leaks)} log line(s)", red=True)
        for line in leaks:
            reporter.write_line("  " + line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
