"""``python -m bench``: start the receiver, the gateway and the two baselines, run scenarios,
write the results (JSON, and with ``--markdown`` the performance page and its plots)."""

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.database import postgres_database
from bench.loadgen import ReceiverClient
from bench.machine import describe
from bench.processes import LOOPBACK, Service, child_env, python_module, unused_port
from bench.reports import ROOT
from bench.targets import GatewaySetup, start_baseline, start_gateway, stop

SCENARIOS = ("smoke", "rising", "fixed", "backlog", "memory")
FULL_RUN = ("rising", "fixed", "backlog", "memory")
RISING_RATES = (25, 50, 100, 150, 200, 300, 400, 600, 800, 1000, 1500, 2000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the gateway against a bare aiohttp + aio-pika pipeline and a "
        "minimal outbox gateway. "
        "Talks to 127.0.0.1 only (RabbitMQ on 5672). Every phase is time-limited: "
        "--all took 14 minutes on a 2-core VM (about two hours if every limit is reached).",
    )
    parser.add_argument("scenario", nargs="*", choices=(*SCENARIOS, []), help="default: smoke")
    parser.add_argument("--all", action="store_true", help=f"run {', '.join(FULL_RUN)}")
    parser.add_argument("--json-out", type=Path, help="write the results here as JSON")
    parser.add_argument("--markdown", type=Path, help="write the results page here")
    parser.add_argument("--img-dir", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--notes", type=Path, help="markdown appended to the results page")
    parser.add_argument(
        "--from-json", type=Path, help="render --markdown from saved results; run nothing"
    )
    parser.add_argument("--work-dir", type=Path, help="keep logs and the SQLite file here")
    parser.add_argument("--conditions", default="", help="how quiet the machine was")
    parser.add_argument(
        "--profile-gateway",
        type=Path,
        help="run the gateway under cProfile and write its stats here when it stops",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the gateway's store: a SQLite file in the work directory, or a PostgreSQL "
        "database made for the run on the local server ($BENCH_POSTGRES_URL) and dropped after",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="0: one all-in-one gateway process; N: one API process and N worker processes",
    )
    parser.add_argument("--smoke-rate", type=float, default=20.0)
    parser.add_argument("--smoke-seconds", type=float, default=3.0)
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--max-rate", type=float, default=2000.0)
    parser.add_argument("--fixed-rate", type=float, default=50.0)
    parser.add_argument("--fixed-seconds", type=float, default=60.0)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--memory-backlog", type=int, default=100_000)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.all:
        args.scenario = list(FULL_RUN)
    elif not args.scenario:
        args.scenario = ["smoke"]
    return args


def _save(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Write what is measured so far, so a later failure cannot lose it."""
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")


def gateway_command(profile: Path | None) -> list[str]:
    if profile is None:
        return [str(ROOT / ".venv" / "bin" / "gateway"), "serve"]
    return python_module("cProfile", "-o", str(profile.resolve()), "-m", "gateway.cli", "serve")


async def run(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    if args.store == "postgresql":
        async with postgres_database() as database:
            results = await _run(args, work_dir, database.url)
            results["setup"]["server_autovacuum"] = database.autovacuum
            return results
    return await _run(args, work_dir, None)


async def _run(
    args: argparse.Namespace, work_dir: Path, database_url: str | None
) -> dict[str, Any]:
    wanted = args.scenario
    port = unused_port()
    receiver = Service(
        "receiver", python_module("bench.receiver", "--port", str(port)), child_env(), work_dir
    )
    results: dict[str, Any] = {
        "machine": describe(),
        "conditions": args.conditions,
        "scenarios": wanted,
    }
    bench = scenarios.Bench(ReceiverClient(f"http://{LOOPBACK}:{port}"))
    started = time.monotonic()
    try:
        await receiver.wait_ready(f"{bench.receiver.base_url}/_bench/count")
        setup = GatewaySetup(workers=args.workers, database_url=database_url)
        results["setup"] = setup.describe()
        bench.gateway = await start_gateway(
            work_dir, bench.receiver.url, gateway_command(args.profile_gateway), setup
        )
        if {"smoke", "rising", "fixed"} & set(wanted):
            bench.baseline = await start_baseline(work_dir, bench.receiver.url)
            bench.outbox_baseline = await start_baseline(work_dir, bench.receiver.url, outbox=True)
        if "smoke" in wanted:
            results["smoke"] = await scenarios.fixed(bench, args.smoke_rate, args.smoke_seconds)
            _save(args, results)
        if "rising" in wanted:
            rates = [r for r in RISING_RATES if r <= args.max_rate]
            results["rising"] = await scenarios.rising(bench, rates, args.step_seconds)
            _save(args, results)
        if "fixed" in wanted:
            results["fixed"] = await scenarios.fixed(bench, args.fixed_rate, args.fixed_seconds)
            _save(args, results)
        for reference in bench.references():
            await stop(reference)
        bench.baseline = bench.outbox_baseline = None
        if "backlog" in wanted:
            results["backlog"] = await scenarios.backlog(bench, args.backlog, args.drain_timeout)
            _save(args, results)
        if "memory" in wanted:
            results["memory"] = await scenarios.memory(bench, args.memory_backlog)
            _save(args, results)
    finally:
        try:
            for target in bench.targets():
                await stop(target)
        finally:
            receiver.stop()
    results["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    results["wall_s"] = round(time.monotonic() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        from bench.report import write_report

        write_report(
            json.loads(args.from_json.read_text()), args.markdown, args.img_dir, args.notes
        )
        return 0
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run(args, args.work_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            results = asyncio.run(run(args, Path(tmp)))
    _save(args, results)
    if args.markdown:
        from bench.report import write_report

        write_report(results, args.markdown, args.img_dir, args.notes)
    summary = {k: v for k, v in results.items() if k not in ("backlog", "memory")}
    print(json.dumps(summary, indent=2)[:20000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
