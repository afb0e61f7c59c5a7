"""The benchmark harness, run briefly at a low rate against the gateway and the baselines."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
RATE = 20
SECONDS = 3
PHASE_FIELDS = {
    "offered_rate",
    "sent",
    "accepted",
    "errors",
    "expected_at_112",
    "received_at_112",
    "missing_at_112",
    "throughput_rps",
    "latency_to_112_ms",
    "intake_answer_ms",
    "cpu_s_per_1000",
    "peak_rss_mb",
}


def smoke(work: Path, *options: str, timeout_s: float) -> dict[str, Any]:
    """``python -m bench smoke`` at RATE for SECONDS with ``options``; its results."""
    out = work / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "smoke",
            *options,
            f"--smoke-rate={RATE}",
            f"--smoke-seconds={SECONDS}",
            f"--json-out={out}",
            f"--work-dir={work}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict[str, Any] = json.loads(out.read_text())
    return results


@pytest.mark.timeout(60)
def test_bench_smoke_delivers_every_report_through_gateway_and_baselines(tmp_path: Path) -> None:
    work = tmp_path / "work"
    results = smoke(work, timeout_s=50)
    assert {"nproc", "cpu_model", "ram_gib", "python", "rabbitmq"} <= results["machine"].keys()
    for target in ("gateway", "baseline", "outbox-baseline"):
        phase = results["smoke"][target]
        assert phase.keys() >= PHASE_FIELDS, target
        assert phase["sent"] == phase["accepted"] == RATE * SECONDS, target
        assert phase["errors"] == 0, (target, phase["error_kinds"])
        assert phase["expected_at_112"] > 0, target
        assert phase["received_at_112"] == phase["expected_at_112"], target
        assert phase["missing_at_112"] == 0, target
        assert set(phase["latency_to_112_ms"]) == {"p50", "p95", "p99", "max"}, target
        assert all(v is not None and v > 0 for v in phase["latency_to_112_ms"].values()), target
        assert phase["throughput_rps"] > 0, target
        assert phase["cpu_s_per_1000"] > 0, target
        assert phase["peak_rss_mb"] > 0, target
    # most generated reports need 112; the baselines forward every one
    gateway = results["smoke"]["gateway"]
    assert gateway["expected_at_112"] >= 0.7 * gateway["accepted"]
    for reference in ("baseline", "outbox-baseline"):
        phase = results["smoke"][reference]
        assert phase["expected_at_112"] == phase["accepted"], reference
    # the minimal outbox gateway went through its outbox: every body committed, published
    (outbox,) = work.glob("bench-outbox-baseline-*.sqlite3")
    with sqlite3.connect(outbox) as conn:
        counts = conn.execute("SELECT COUNT(*), SUM(published) FROM outbox").fetchone()
    assert counts == (RATE * SECONDS, RATE * SECONDS)


@pytest.mark.timeout(90)
def test_bench_smoke_runs_the_gateway_as_an_api_and_two_workers_on_postgresql(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    results = smoke(work, "--store=postgresql", "--workers=2", timeout_s=80)
    assert (
        results["setup"].items()
        >= {
            "store": "postgresql",
            "api_processes": 1,
            "worker_processes": 2,
        }.items()
    )
    assert isinstance(results["setup"]["server_autovacuum"], bool)
    phase = results["smoke"]["gateway"]
    assert phase["sent"] == phase["accepted"] == RATE * SECONDS
    assert phase["received_at_112"] == phase["expected_at_112"] > 0
    assert phase["store_server_cpu_s_per_1000"] > 0
    delivered = '"delivery.delivered"'
    assert delivered not in (work / "gateway.log").read_text(), "the API process only takes"
    for worker in ("gateway-worker-1.log", "gateway-worker-2.log"):
        assert delivered in (work / worker).read_text(), f"{worker} delivered nothing"
