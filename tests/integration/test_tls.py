"""TLS: `gateway serve` speaks HTTPS with the configured certificate; amqps:// URLs pass."""

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_support import serve_env, serving, settings_for_test
from pydantic import ValidationError
from queue_support import unused_port

from gateway.bootstrap import tls_context
from gateway.queue.connection import AmqpConnection
from gateway.settings import Settings

pytestmark = pytest.mark.integration


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_gateway(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    cert, key = self_signed(tmp_path)
    port = unused_port()
    namespace = f"t{uuid.uuid4().hex[:10]}"
    env = serve_env(
        GATEWAY_HTTP_PORT=str(port),
        GATEWAY_NAMESPACE=namespace,
        GATEWAY_DATABASE_URL=f"sqlite:///{tmp_path / 'gw.sqlite3'}",
        GATEWAY_TLS_CERT_FILE=str(cert),
        GATEWAY_TLS_KEY_FILE=str(key),
    )
    with serving(tmp_path, env):
        yield port, cert


def _get(url: str, context: ssl.SSLContext | None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310 - loopback test URL
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.timeout(60)
def test_serve_answers_https_with_the_configured_certificate(
    tls_gateway: tuple[int, Path],
) -> None:
    port, cert = tls_gateway
    trusting = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 30
    while True:
        try:
            status, body = _get(f"https://127.0.0.1:{port}/healthz", trusting)
            break
        except (OSError, urllib.error.URLError):
            assert time.monotonic() < deadline, "gateway serve never answered over TLS"
            time.sleep(0.2)
    assert (status, json.loads(body)) == (200, {"status": "up"})
    with pytest.raises((OSError, urllib.error.URLError)):
        _get(f"https://127.0.0.1:{port}/healthz", ssl.create_default_context())
    with pytest.raises((OSError, urllib.error.URLError, ConnectionError)):
        _get(f"http://127.0.0.1:{port}/healthz", None)


def test_tls_context_needs_both_files(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    assert tls_context(settings_for_test(tmp_path)) is None
    context = tls_context(settings_for_test(tmp_path, tls_cert_file=cert, tls_key_file=key))
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ValidationError, match="together"):
        settings_for_test(tmp_path, tls_cert_file=cert)


def test_an_amqps_url_is_accepted() -> None:
    url = "amqps://gateway:secret@rabbit.example:5671/%2F?cafile=/etc/ssl/ca.pem"
    settings = Settings.model_validate({"amqp_url": url})
    assert settings.amqp_url.get_secret_value() == url
    AmqpConnection(settings.amqp_url.get_secret_value(), name="tls-check")
