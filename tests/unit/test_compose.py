"""docker-compose.yml cannot run here (no Docker engine); what can be checked by parsing is."""

from pathlib import Path
from typing import Any

import yaml

from gateway.settings import Settings

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


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
