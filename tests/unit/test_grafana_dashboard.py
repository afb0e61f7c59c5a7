"""The Grafana dashboard under deploy/ charts only metrics the gateway exports, and all of
them, summed over every gateway process; it loads by import and by provisioning alike."""

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from gateway.adapters.http_api import HttpContext
from gateway.adapters.metrics import GatewayMetrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "kdrt-gateway.json"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
METRIC = re.compile(r"\b(gateway_[a-z0-9_]+)\b")
AGGREGATED = re.compile(r"^(histogram_quantile\([0-9.]+, )?(sum|max|min) ?(by \([a-z_, ]+\) )?\(")


def _exported() -> dict[str, str]:
    """Every series name the gateway's registry can answer, to its metric family."""
    registry = CollectorRegistry()
    GatewayMetrics(registry, clock=lambda: datetime.now(UTC))
    HttpContext(max_body_bytes=1, registry=registry, clock=lambda: datetime.now(UTC))
    return {
        family.name + suffix: family.name
        for family in registry.collect()
        for suffix in SUFFIXES[family.type]
    }


def _under(node: Any, wanted: str) -> Iterator[Any]:
    """Every value of a ``wanted`` key, however deep in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == wanted:
                yield value
            else:
                yield from _under(value, wanted)
    elif isinstance(node, list):
        for item in node:
            yield from _under(item, wanted)


def _exprs(node: Any) -> Iterator[str]:
    return (value for value in _under(node, "expr") if isinstance(value, str))


def test_every_expression_uses_only_exported_metrics() -> None:
    exported = _exported()
    exprs = list(_exprs(json.loads(DASHBOARD.read_text(encoding="utf-8"))))
    assert exprs
    for expr in exprs:
        names = METRIC.findall(expr)
        assert names, f"no gateway metric in {expr!r}"
        unknown = [name for name in names if name not in exported]
        assert not unknown, f"{expr!r} uses {unknown}, which the gateway does not export"


def test_every_metric_of_the_gateway_is_on_the_dashboard() -> None:
    exported = _exported()
    text = DASHBOARD.read_text(encoding="utf-8")
    charted = {exported[name] for name in METRIC.findall(text) if name in exported}
    assert charted == set(exported.values())


def _dashboard() -> Any:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_every_expression_adds_up_all_processes() -> None:
    """Each process of a scaled-out gateway (an API process, N workers) has its own
    series: a panel shows one line per recipient or queue, never one per process."""
    for expr in _exprs(_dashboard()):
        for side in expr.split(" / "):
            assert AGGREGATED.match(side), f"{side!r} is not aggregated over processes"


def test_it_loads_by_provisioning_too() -> None:
    """Import-time ``__inputs`` are not resolved by file provisioning (Grafana's own
    limit): the panels name their Prometheus through a datasource variable instead."""
    dashboard = _dashboard()
    assert "__inputs" not in dashboard
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    used = list(_under(dashboard["panels"], "datasource"))
    assert used
    assert all(d == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"} for d in used)
