"""The Prometheus alerting rules (deploy/prometheus/alerts.yml): Prometheus's own promtool
checks them with the configuration that loads them and runs their unit tests
(tests/prometheus/alerts_test.yml); a gateway just started exposes every metric they
name, and at 0 the counters whose first increase they watch for."""

import re
import subprocess
from pathlib import Path

import yaml
from gateway_support import running_gateway
from prometheus_client.parser import text_string_to_metric_families
from prometheus_support import PROMTOOL

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "alerts_test.yml"


def promtool(*args: str) -> str:
    assert PROMTOOL.exists(), "run scripts/ensure-promtool.sh (make test does)"
    done = subprocess.run(
        [str(PROMTOOL), *args], capture_output=True, text=True, timeout=120, check=False
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    return said


def test_promtool_accepts_the_configuration_and_its_rules() -> None:
    said = promtool("check", "config", str(CONFIG))
    assert "SUCCESS: 10 rules found" in said


def test_the_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", str(RULE_TESTS))


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_every_alert_has_a_severity_and_a_summary() -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


async def test_a_new_gateway_exposes_what_the_alerts_watch_at_zero(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        text = await (await gw.client.get("/metrics")).text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    exposed = {s.name for family in families.values() for s in family.samples} | {
        f"{name}_total" for name, f in families.items() if f.type == "counter"
    }
    named = {name for expr in rule_expressions() for name in re.findall(r"\bgateway_[a-z_]+", expr)}
    assert named <= exposed | set(families), named - exposed
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    for series in (
        ("gateway_delivery_deadline_alerts_total", (("alert", "deadline_missed"),)),
        ("gateway_delivery_deadline_alerts_total", (("alert", "at_risk"),)),
        ("gateway_deliveries_total", (("outcome", "parked"),)),
        ("gateway_deliveries_total", (("outcome", "gone"),)),
    ):
        name, (label,) = series
        key = (name, tuple(sorted((label, ("recipient", "c112")))))
        assert samples.get(key) == 0.0, f"{key} not at 0 from the start"
    for step in range(1, 9):
        assert samples.get(("gateway_sla_breaches_total", (("step", str(step)),))) == 0.0
    refused = (("outcome", "store-unavailable"), ("source", "si-lacak-perak"))
    assert samples.get(("gateway_intake_total", refused)) == 0.0
