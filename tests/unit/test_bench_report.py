"""The benchmark page sets the gateway beside both references of the same run."""

from typing import Any

from bench.report import render, targets


def _phase(rate: float, throughput: float, p50: float, p99: float, cpu: float) -> dict[str, Any]:
    return {
        "offered_rate": rate,
        "throughput_rps": throughput,
        "latency_to_112_ms": {"p50": p50, "p95": p99, "p99": p99, "max": p99},
        "cpu_s_per_1000": cpu,
        "peak_rss_mb": 80.0,
        "errors": 0,
        "missing_at_112": 0,
        "seconds": 60.0,
    }


RESULTS: dict[str, Any] = {
    "machine": {
        "at": "2026-11-30T00:00:00Z",
        "cpu_model": "test",
        "nproc": 2,
        "ram_gib": 24,
        "python": "3.11",
        "rabbitmq": "3.10",
        "kernel": "test",
        "loadavg_1m_at_start": 0.1,
    },
    "rising": {
        "gateway": {"saturated_rps": 200.0, "steps": [_phase(200, 200, 9, 14, 5)]},
        "baseline": {"saturated_rps": 1000.0, "steps": [_phase(1000, 1000, 4, 8, 1)]},
        "outbox-baseline": {"saturated_rps": 500.0, "steps": [_phase(500, 500, 5, 10, 2)]},
    },
    "fixed": {
        "gateway": _phase(50, 50, 8.0, 14.0, 6.0),
        "baseline": _phase(50, 50, 4.0, 7.0, 1.5),
        "outbox-baseline": _phase(50, 50, 5.0, 10.0, 2.0),
    },
}


def test_the_targets_name_both_references_beside_the_gateway() -> None:
    rows = {target: (measured, verdict) for target, measured, verdict in targets(RESULTS)}
    throughput, verdict = rows["saturated throughput ≥ 60 % of baseline"]
    assert throughput == "200 / 1000 reports/s = 20% (minimal outbox gateway: 500/s)"
    assert verdict == "**not met**"
    p99, verdict = rows["p99 POST→112 ≤ 10 ms at 50 reports/s"]
    assert p99 == "14.0 ms; in the same run: bare baseline 7.0, minimal outbox 10.0 ms"
    assert verdict == "**not met**"


def test_the_ratio_table_has_a_figure_and_a_ratio_for_each_reference(tmp_path: Any) -> None:
    page = render(RESULTS, tmp_path / "img", tmp_path)
    assert "| figure | gateway | bare baseline | ratio | minimal outbox | ratio |" in page
    assert "| saturated throughput (reports/s) | 200 | 1000 | 0.20 | 500 | 0.40 |" in page
    assert "| p99 POST→112 at 50/s (ms) | 14.0 | 7.0 | 2.0 | 10.0 | 1.4 |" in page
    assert "| CPU s per 1 000 reports | 6.00 | 1.50 | 4.0 | 2.00 | 3.0 |" in page
    assert "| outbox-baseline | 50 | 50 | 5.0 | 10.0 |" in page
