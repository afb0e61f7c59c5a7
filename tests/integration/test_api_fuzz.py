"""schemathesis against `/openapi.json` of a real `gateway serve`: no 5xx, every answer
as documented (status, media type, headers, body schema), auth never ignored.

The signed intake is called with a valid Standard Webhooks signature over the exact
bytes sent, so generated reports get past the signature and into the normaliser. The
fixture reports go in first, so there are cases to look at; the process's log file
goes through the whole-run log scan at the end.
"""

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from gateway_support import serve_env, serving
from hypothesis import HealthCheck, given, settings
from queue_support import unused_port
from samples import INVALID_SAMPLES, VALID_SAMPLES, fixture_bytes, new_secret
from schemathesis import checks
from schemathesis.core.result import Ok

from gateway import signing
from gateway.access import ApiRole

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 25
SIGNED_SCHEME = "inboundWebhook"
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.ignored_auth,
]


@dataclass(frozen=True)
class Served:
    base: str
    inbound_secret: str
    c112_secret: str
    tokens: dict[str, str]

    def token_for(self, roles: list[str]) -> str:
        return self.tokens[roles[0]] if roles else self.tokens[ApiRole.OPS.value]

    def secret_for(self, path: str) -> str:
        return self.c112_secret if path.startswith("/v1/c112/") else self.inbound_secret


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = unused_port()
    namespace = f"t{uuid.uuid4().hex[:10]}"
    inbound, c112 = new_secret(), new_secret()
    tokens = {role.value: f"{role.value}-{uuid.uuid4().hex}" for role in ApiRole}
    env = serve_env(
        **{f"GATEWAY_{role.upper()}_TOKEN": token for role, token in tokens.items()},
        GATEWAY_HTTP_PORT=str(port),
        GATEWAY_NAMESPACE=namespace,
        GATEWAY_DATABASE_URL=f"sqlite:///{tmp_path / 'gw.sqlite3'}",
        GATEWAY_INBOUND_SECRET=inbound,
        GATEWAY_C112_SECRET=c112,
        GATEWAY_RATE_LIMIT_PER_S="10000",
        GATEWAY_RATE_LIMIT_BURST="10000",
    )
    base = f"http://127.0.0.1:{port}"
    with serving(tmp_path, env):
        _wait_up(base)
        yield Served(base, inbound, c112, tokens)


def _wait_up(base: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        assert time.monotonic() < deadline, "gateway serve never answered"
        time.sleep(0.2)


def _call(case: Any, served: Served) -> tuple[requests.Response, dict[str, Any], dict[str, str]]:
    """Send ``case`` with a token of a role the operation accepts, or a valid signature.

    Answers the response, what was sent, and the credentials added (schemathesis then
    probes the operation without them and with wrong ones, expecting 401 or 403).
    """
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=served.base)
    definition = case.operation.definition.raw
    security = definition.get("security") or []
    schemes = {name for requirement in security for name in requirement}
    credentials: dict[str, str] = {}
    if "bearerToken" in schemes:
        token = served.token_for(definition.get("x-roles") or [])
        credentials["Authorization"] = f"Bearer {token}"
    if SIGNED_SCHEME in schemes:
        if "json" in kwargs:
            kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
        body = kwargs.get("data") or b""
        if isinstance(body, str):
            body = body.encode()
        kwargs["data"] = body
        signed = signing.webhook_headers(
            [served.secret_for(case.operation.path)], str(uuid.uuid4()), body, datetime.now(UTC)
        )
        signed.pop("content-type")
        credentials.update(signed)
    kwargs["headers"].update(credentials)
    response = requests.request(**kwargs, timeout=10)
    return response, kwargs, credentials


def _fuzz(operation: Any, served: Served, statuses: set[int]) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        response, kwargs, credentials = _call(case, served)
        statuses.add(response.status_code)
        probe_headers = {k: v for k, v in kwargs["headers"].items() if k not in credentials}
        case.validate_response(
            response,
            checks=CHECKS,
            headers=credentials,
            transport_kwargs={**kwargs, "headers": probe_headers},
        )

    check()


def _streams(definition: dict[str, Any]) -> bool:
    """An endless event stream has no whole answer to validate; it is left out."""
    answers = definition.get("responses", {}).values()
    return any("text/event-stream" in answer.get("content", {}) for answer in answers)


def _post_signed(served: Served, body: bytes) -> int:
    headers = signing.webhook_headers(
        [served.inbound_secret], str(uuid.uuid4()), body, datetime.now(UTC)
    )
    response = requests.post(
        served.base + "/v1/reports/si-lacak-perak", data=body, headers=headers, timeout=10
    )
    return response.status_code


@pytest.mark.timeout(120)
def test_the_api_answers_as_its_openapi_document_says(served: Served) -> None:
    for name in VALID_SAMPLES:
        assert _post_signed(served, fixture_bytes(name)) == 202
    for name in INVALID_SAMPLES:
        assert _post_signed(served, fixture_bytes(name)) == 422
    schema = schemathesis.openapi.from_url(served.base + "/openapi.json")
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results
    operations = [
        result.ok()
        for result in results
        if isinstance(result, Ok) and not _streams(result.ok().definition.raw)
    ]
    assert len(operations) >= 5
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        _fuzz(operation, served, statuses.setdefault(label, set()))
    assert all(code < 500 for codes in statuses.values() for code in codes), statuses
    intake = statuses["POST /v1/reports/si-lacak-perak"]
    assert intake & {400, 422}, intake
