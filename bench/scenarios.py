"""The scenarios, each a function of a running bench that answers a JSON-able dict."""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.loadgen import Progress, ReceiverClient, Schedule, Sent, fill, play
from bench.processes import server_cpu_between
from bench.reports import make_reports, sign_reports
from bench.stats import inversion_fraction, latency_summary_ms
from bench.targets import Target

MB = 1024 * 1024
SETTLE_S = 15.0
QUIET_S = 2.0
QUIET_LIMIT_S = 90.0
SATURATION_SHORTFALL = 0.9
SATURATION_P99_MS = 1000.0
FILL_IN_FLIGHT = 16
BACKLOG_BUILD_LIMIT_S = 600.0
MEMORY_BUILD_LIMIT_S = 1800.0
BACKLOG_SETTLE_S = 3.0


@dataclass
class Bench:
    receiver: ReceiverClient
    gateway: Target | None = None
    baseline: Target | None = None
    outbox_baseline: Target | None = None

    def targets(self) -> list[Target]:
        candidates = (self.gateway, self.baseline, self.outbox_baseline)
        return [t for t in candidates if t is not None]

    def references(self) -> list[Target]:
        return [t for t in (self.baseline, self.outbox_baseline) if t is not None]


def _signed(target: Target, label: str, count: int, rate: float) -> Any:
    reports = make_reports(count, f"{label}-{target.name}")
    return sign_reports(reports, target.inbound_secret, wall_start_s=time.time(), rate=rate)


def summarise(
    results: Sequence[Sent],
    arrivals: dict[str, int],
    *,
    start_ns: int,
    rate: float,
    cpu_s: float,
    peak_rss: int,
) -> dict[str, Any]:
    """The figures of one phase; latency to 112 counts from each report's scheduled time."""
    accepted = [s for s in results if s.status == 202]
    to_112 = [s for s in accepted if s.needs_112]
    latencies = [arrivals[s.reference] - s.scheduled_ns for s in to_112 if s.reference in arrivals]
    completions = [arrivals.get(s.reference, 0) if s.needs_112 else s.answered_ns for s in accepted]
    completed = [t for t in completions if t > 0]
    span_s = (max(completed) - start_ns) / 1e9 if completed else 0.0
    return {
        "offered_rate": rate,
        "sent": len(results),
        "accepted": len(accepted),
        "errors": sum(1 for s in results if s.error is not None),
        "error_kinds": sorted({s.error for s in results if s.error is not None}),
        "expected_at_112": len(to_112),
        "received_at_112": len(latencies),
        "missing_at_112": len(to_112) - len(latencies),
        "throughput_rps": round(len(completed) / span_s, 1) if span_s > 0 else 0.0,
        "latency_to_112_ms": latency_summary_ms(latencies),
        "intake_answer_ms": latency_summary_ms(
            [s.answered_ns - s.scheduled_ns for s in results if s.answered_ns]
        ),
        "max_send_lag_ms": round(
            max((s.sent_ns - s.scheduled_ns for s in results), default=0) / 1e6, 3
        ),
        "cpu_s_per_1000": round(cpu_s / len(accepted) * 1000, 3) if accepted else None,
        "peak_rss_mb": round(peak_rss / MB, 1),
    }


async def _quiesce(receiver: ReceiverClient) -> None:
    """Until nothing has arrived for ``QUIET_S`` (a saturated step leaves work behind)."""
    deadline = time.monotonic() + QUIET_LIMIT_S
    last = -1
    while time.monotonic() < deadline:
        count = (await receiver.count())["received"]
        if count == last:
            return
        last = count
        await asyncio.sleep(QUIET_S)


async def phase(
    bench: Bench, target: Target, label: str, rate: float, seconds: float
) -> dict[str, Any]:
    """Offer ``rate`` reports/s for ``seconds`` to ``target``; wait for 112 to have them."""
    count = max(1, round(rate * seconds))
    reports = _signed(target, label, count, rate)
    await bench.receiver.forget()
    meter = target.meter()
    cpu_before = meter.cpu_seconds()
    server_before = meter.server_cpu()
    meter.start()
    schedule = Schedule(rate)
    await play(target.intake_url, reports, schedule, reads_decision=target.reads_decision)
    expected = sum(1 for s in schedule.results if s.status == 202 and s.needs_112)
    settled = await bench.receiver.wait_for(expected, SETTLE_S) >= expected
    await meter.stop()
    cpu_s = meter.cpu_seconds() - cpu_before
    server_after = meter.server_cpu()
    receipts = await bench.receiver.receipts()
    arrivals = {reference: t_ns for reference, t_ns, _ in receipts["arrivals"]}
    result = summarise(
        schedule.results,
        arrivals,
        start_ns=schedule.start_ns,
        rate=rate,
        cpu_s=cpu_s,
        peak_rss=meter.peak_rss(),
    )
    result["duplicates_at_112"] = receipts["duplicates"]
    result["seconds"] = seconds
    if server_before is not None and server_after is not None and result["accepted"]:
        spent = server_cpu_between(server_before, server_after)
        result["store_server_cpu_s_per_1000"] = round(spent / result["accepted"] * 1000, 3)
    if not settled:
        await _quiesce(bench.receiver)
    return result


def saturated(step: dict[str, Any]) -> bool:
    p99 = step["latency_to_112_ms"]["p99"]
    return (
        step["throughput_rps"] < SATURATION_SHORTFALL * step["offered_rate"]
        or step["missing_at_112"] > 0
        or step["errors"] > 0
        or (p99 is not None and p99 > SATURATION_P99_MS)
    )


async def rising(bench: Bench, rates: Sequence[float], step_s: float) -> dict[str, Any]:
    """Step the offered rate up until the target saturates (or the steps run out)."""
    out: dict[str, Any] = {}
    for target in bench.targets():
        steps = []
        for rate in rates:
            step = await phase(bench, target, f"rise{int(rate)}", rate, step_s)
            step["saturated"] = saturated(step)
            steps.append(step)
            if step["saturated"]:
                break
        out[target.name] = {
            "steps": steps,
            "saturated_rps": max(s["throughput_rps"] for s in steps),
            "reached_saturation": steps[-1]["saturated"],
        }
    return out


async def fixed(bench: Bench, rate: float, seconds: float) -> dict[str, Any]:
    return {
        t.name: await phase(bench, t, f"fixed{int(rate)}", rate, seconds) for t in bench.targets()
    }


def _epoch(deadline: str | None) -> float:
    return datetime.fromisoformat(deadline).timestamp() if deadline else 0.0


async def backlog(bench: Bench, count: int, drain_timeout_s: float) -> dict[str, Any]:
    """Build ``count`` reports while 112 answers 503, then let 112 answer again: the drain
    rate, and whether the earliest deadlines arrive first."""
    target = bench.gateway
    if target is None:
        raise ValueError("the backlog scenario runs against the gateway")
    reports = make_reports(count, f"backlog{count}", share_112=1.0)
    await bench.receiver.forget()
    await bench.receiver.answer_with(503)
    meter = target.meter()
    meter.start()
    built_at = time.monotonic()
    results = await fill(
        target.intake_url,
        reports,
        target.inbound_secret,
        Progress(),
        in_flight=FILL_IN_FLIGHT,
        limit_s=BACKLOG_BUILD_LIMIT_S,
    )
    build_s = time.monotonic() - built_at
    accepted = sum(1 for s in results if s.status == 202)
    expected = sum(1 for s in results if s.status == 202 and s.needs_112)
    await asyncio.sleep(BACKLOG_SETTLE_S)
    refused_while_down = (await bench.receiver.count())["refused"]
    cpu_before = meter.cpu_seconds()
    opened_ns = time.monotonic_ns()
    await bench.receiver.answer_with(202)
    received = await bench.receiver.wait_for(expected, drain_timeout_s)
    cpu_s = meter.cpu_seconds() - cpu_before
    await meter.stop()
    receipts = await bench.receiver.receipts()
    arrivals = receipts["arrivals"]
    last_ns = max((t for _, t, _ in arrivals), default=opened_ns)
    first_ns = min((t for _, t, _ in arrivals), default=opened_ns)
    drain_s = (last_ns - opened_ns) / 1e9
    flowing_s = (last_ns - first_ns) / 1e9
    deadlines = [_epoch(d) for _, _, d in arrivals]
    step = max(1, len(arrivals) // 500)
    by_deadline = sorted(range(len(deadlines)), key=deadlines.__getitem__)
    deadline_rank = [0] * len(deadlines)
    for rank, index in enumerate(by_deadline):
        deadline_rank[index] = rank
    await _quiesce(bench.receiver)
    return {
        "count": count,
        "build_rate": round(accepted / build_s, 1),
        "build_s": round(build_s, 1),
        "accepted": accepted,
        "errors": sum(1 for s in results if s.error is not None),
        "expected_at_112": expected,
        "refused_while_down": refused_while_down,
        "received_at_112": received,
        "duplicates_at_112": receipts["duplicates"],
        "drain_s": round(drain_s, 2),
        "drain_rps": round(len(arrivals) / drain_s, 1) if drain_s > 0 else 0.0,
        "first_arrival_s": round((first_ns - opened_ns) / 1e9, 2),
        "flowing_rps": round(len(arrivals) / flowing_s, 1) if flowing_s > 0 else 0.0,
        "drain_cpu_s_per_1000": round(cpu_s / len(arrivals) * 1000, 3) if arrivals else None,
        "peak_rss_mb": round(meter.peak_rss() / MB, 1),
        "deadline_inversion_fraction": round(inversion_fraction(deadlines), 4),
        "order_sample": [
            [i, deadline_rank[i], round((arrivals[i][1] - opened_ns) / 1e9, 3)]
            for i in range(0, len(arrivals), step)
        ],
    }


async def memory(bench: Bench, count: int) -> dict[str, Any]:
    """Build a ``count``-report backlog while 112 answers 503, sampling the gateway's RSS."""
    target = bench.gateway
    if target is None:
        raise ValueError("the memory scenario runs against the gateway")
    reports = make_reports(count, f"memory{count}", share_112=1.0)
    await bench.receiver.forget()
    await bench.receiver.answer_with(503)
    meter = target.meter()
    rss_start = meter.rss()
    progress = Progress()
    samples: list[list[float]] = []

    async def sample() -> None:
        began = time.monotonic()
        while True:
            samples.append(
                [round(time.monotonic() - began, 2), progress.accepted, meter.rss() / MB]
            )
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    built_at = time.monotonic()
    try:
        results = await fill(
            target.intake_url,
            reports,
            target.inbound_secret,
            progress,
            in_flight=FILL_IN_FLIGHT,
            limit_s=MEMORY_BUILD_LIMIT_S,
        )
        build_s = time.monotonic() - built_at
        await asyncio.sleep(10.0)
    finally:
        sampler.cancel()
    refused = (await bench.receiver.count())["refused"]
    await bench.receiver.answer_with(202)
    waiting = sum(1 for s in results if s.status == 202 and s.needs_112)
    half = [rss for _, accepted, rss in samples if accepted >= count // 2]
    return {
        "count": count,
        "build_rate": round(progress.accepted / build_s, 1),
        "build_s": round(build_s, 1),
        "accepted": progress.accepted,
        "errors": progress.failed,
        "waiting_for_112": waiting,
        "refused_while_down": refused,
        "rss_start_mb": round(rss_start / MB, 1),
        "rss_peak_mb": round(max(rss for _, _, rss in samples), 1),
        "rss_at_half_mb": round(half[0], 1) if half else None,
        "rss_end_mb": round(samples[-1][2], 1),
        "samples": [[t, accepted, round(rss, 1)] for t, accepted, rss in samples],
    }
