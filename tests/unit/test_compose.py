"""docker-compose.yml cannot run here (no Docker engine); what can be checked by parsing is."""

from pathlib import Path
from typing import Any

import yaml

from gateway.settings import Settings

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana" / "provisioning"


def _yaml(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def _compose() -> dict[str, Any]:
    return _yaml(COMPOSE)


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts of files in this repository: container path to repo path."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = source[2:]
    return found


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def test_every_gateway_variable_is_a_setting() -> None:
    known = {f"GATEWAY_{name.upper()}" for name in Settings.model_fields}
    used = set()
    for service in _compose()["services"].values():
        used |= {k for k in (service.get("environment") or {}) if k.startswith("GATEWAY_")}
    assert used, "the gateway services set no GATEWAY_ variables"
    assert used - known == set()


def test_services_and_health_checks() -> None:
    services = _compose()["services"]
    assert {"rabbitmq", "postgres", "gateway", "worker", "sim112"} <= set(services)
    for name in ("rabbitmq", "postgres", "gateway", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert "management" in services["rabbitmq"]["image"]
    for name in ("gateway", "worker"):
        for needed in ("rabbitmq", "postgres"):
            assert services[name]["depends_on"][needed]["condition"] == "service_healthy"


def test_one_api_process_and_two_workers_on_postgresql() -> None:
    services = _compose()["services"]
    assert services["gateway"]["command"][-2:] == ["--role", "api"]
    assert services["worker"]["command"][-2:] == ["--role", "worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("gateway", "worker"):
        url = services[name]["environment"]["GATEWAY_DATABASE_URL"]
        assert url.startswith("postgresql://")
        assert url.endswith("@postgres:5432/gateway")


def test_every_file_a_service_mounts_is_in_the_repository() -> None:
    for name, service in _compose()["services"].items():
        for source in _mounts(service).values():
            assert (ROOT / source).exists(), f"{name} mounts ./{source}, which is missing"


def test_services_of_a_profile_require_no_variable() -> None:
    """Compose interpolates every service before it filters by profile: a ``${VAR:?}`` in
    the monitoring services would stop a plain ``docker compose up``."""
    for name, service in _compose()["services"].items():
        if service.get("profiles"):
            assert not [s for s in _strings(service) if ":?" in s], name


def test_prometheus_scrapes_the_api_process_and_every_worker() -> None:
    services = _compose()["services"]
    prometheus = services["prometheus"]
    assert _mounts(prometheus)[_config_path(prometheus)] == str(PROMETHEUS.relative_to(ROOT))
    port = int(services["gateway"]["environment"]["GATEWAY_HTTP_PORT"])
    jobs = {job["job_name"]: job for job in _yaml(PROMETHEUS)["scrape_configs"]}
    assert jobs["gateway-api"]["static_configs"] == [{"targets": [f"gateway:{port}"]}]
    workers = jobs["gateway-worker"]["dns_sd_configs"]
    assert workers == [{"names": ["worker"], "type": "A", "port": port, "refresh_interval": "30s"}]
    assert all(job["metrics_path"] == "/metrics" for job in jobs.values())
    assert {"gateway", "worker"} <= set(prometheus["depends_on"])


def _config_path(prometheus: dict[str, Any]) -> str:
    command: list[str] = prometheus["command"]
    return next(arg.split("=", 1)[1] for arg in command if arg.startswith("--config.file="))


def test_prometheus_loads_the_alerting_rules_beside_its_configuration() -> None:
    prometheus = _compose()["services"]["prometheus"]
    config_dir = Path(_config_path(prometheus)).parent
    mounts = _mounts(prometheus)
    rule_files = _yaml(PROMETHEUS)["rule_files"]
    assert rule_files == ["alerts.yml"]
    for rules in rule_files:
        in_repo = (PROMETHEUS.parent / rules).relative_to(ROOT)
        assert mounts[str(config_dir / rules)] == str(in_repo)


def test_grafana_provisions_prometheus_and_the_dashboard() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = _mounts(grafana)
    for kind in ("datasources", "dashboards"):
        assert mounts[f"/etc/grafana/provisioning/{kind}"] == str(
            (GRAFANA / kind).relative_to(ROOT)
        )
    (source,) = _yaml(GRAFANA / "datasources" / "prometheus.yml")["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")
    assert "127.0.0.1:9090:9090" in _compose()["services"]["prometheus"]["ports"]
    (provider,) = _yaml(GRAFANA / "dashboards" / "kdrt-gateway.yml")["providers"]
    folder = provider["options"]["path"]
    assert mounts[f"{folder}/kdrt-gateway.json"] == "deploy/grafana/kdrt-gateway.json"
