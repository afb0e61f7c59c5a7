"""The open-model load generator: reports go out on a fixed schedule, whatever the
answers do (no closed loop), and latency counts from the *scheduled* send time, so a
server that falls behind is charged for the wait it causes."""

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.reports import Report, SignedReport, sign_reports

START_LEAD_NS = 200_000_000
REQUEST_TIMEOUT_S = 60.0


@dataclass(slots=True)
class Sent:
    """One report's trip to the intake endpoint."""

    reference: str
    scheduled_ns: int
    sent_ns: int = 0
    answered_ns: int = 0
    status: int | None = None
    error: str | None = None
    needs_112: bool = False


@dataclass
class Progress:
    """Live counts, for samplers that run while the schedule plays."""

    sent: int = 0
    accepted: int = 0
    failed: int = 0


@dataclass
class Schedule:
    rate: float
    start_ns: int = 0
    results: list[Sent] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    report: SignedReport,
    sent: Sent,
    progress: Progress,
    reads_decision: bool,
) -> None:
    sent.sent_ns = time.monotonic_ns()
    progress.sent += 1
    try:
        async with session.post(url, data=report.body, headers=report.headers) as answer:
            payload = await answer.read()
            sent.answered_ns = time.monotonic_ns()
            sent.status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        sent.answered_ns = time.monotonic_ns()
        sent.error = type(exc).__name__
        progress.failed += 1
        return
    if sent.status != 202:
        sent.error = f"http {sent.status}"
        progress.failed += 1
        return
    progress.accepted += 1
    if reads_decision:
        decision: Any = json.loads(payload)
        sent.needs_112 = bool(decision.get("needs_other_agencies"))
    else:
        sent.needs_112 = True


async def play(
    url: str,
    reports: Sequence[SignedReport],
    schedule: Schedule,
    *,
    reads_decision: bool,
) -> None:
    """POST ``reports[i]`` at ``start + i / rate``; returns when every answer is in.

    ``reads_decision``: take whether a report goes to 112 from the gateway's answer
    (``needs_other_agencies``); otherwise (the baseline) every report goes on.
    """
    interval_ns = 1e9 / schedule.rate
    connector = aiohttp.TCPConnector(limit=2000)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        schedule.start_ns = start = time.monotonic_ns() + START_LEAD_NS
        tasks = []
        for i, report in enumerate(reports):
            due = start + int(i * interval_ns)
            ahead_ns = due - time.monotonic_ns()
            if ahead_ns > 0:
                await asyncio.sleep(ahead_ns / 1e9)
            sent = Sent(report.reference, due)
            schedule.results.append(sent)
            tasks.append(
                asyncio.create_task(
                    _post(session, url, report, sent, schedule.progress, reads_decision)
                )
            )
        await asyncio.gather(*tasks)


async def fill(
    url: str,
    reports: Sequence[Report],
    secret: str,
    progress: Progress,
    *,
    in_flight: int,
    limit_s: float,
) -> list[Sent]:
    """POST ``reports`` as fast as they are taken, ``in_flight`` at a time, each signed
    as it goes: for building backlogs, which may outlast a signature's 5-minute life.
    Stops early after ``limit_s``. Not a load model; latency is not measured from it."""
    stop_at = time.monotonic() + limit_s
    results: list[Sent] = []
    pending = iter(reports)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def worker() -> None:
            for report in pending:
                if time.monotonic() > stop_at:
                    return
                (signed,) = sign_reports([report], secret, wall_start_s=time.time(), rate=1.0)
                sent = Sent(report.reference, time.monotonic_ns())
                results.append(sent)
                await _post(session, url, signed, sent, progress, reads_decision=True)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return results


class ReceiverClient:
    """The load generator's view of the receiver process."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.url = f"{base_url}/v1/messages"

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base_url + path, json=body) as answer,
        ):
            answer.raise_for_status()
            return None if answer.status == 204 else await answer.json()

    async def count(self) -> dict[str, int]:
        counts: dict[str, int] = await self._call("GET", "/_bench/count")
        return counts

    async def receipts(self) -> dict[str, Any]:
        receipts: dict[str, Any] = await self._call("GET", "/_bench/receipts")
        return receipts

    async def forget(self) -> None:
        await self._call("DELETE", "/_bench/receipts")

    async def answer_with(self, status: int) -> None:
        await self._call("PUT", "/_bench/mode", {"status": status})

    async def wait_for(self, expected: int, timeout_s: float) -> int:
        """Until ``expected`` messages arrived or ``timeout_s`` passed; the count reached."""
        deadline = time.monotonic() + timeout_s
        while True:
            received = (await self.count())["received"]
            if received >= expected or time.monotonic() > deadline:
                return received
            await asyncio.sleep(0.1)
