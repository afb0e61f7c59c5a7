"""`gateway simulate-partner`: the partner's receiver for drills, as a real process."""

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from queue_support import unused_port
from samples import new_secret

from gateway import signing

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


@pytest.fixture
def simulator() -> Iterator[tuple[str, str]]:
    secret, port = new_secret(), unused_port()
    process = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gateway"),
            "simulate-partner",
            "--secret",
            secret,
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(base + "/_sim/stats", timeout=1):  # noqa: S310
                    break
            except OSError:
                assert time.monotonic() < deadline, "the partner simulator never answered"
                time.sleep(0.1)
        yield base, secret
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            pytest.fail(f"SIGINT did not stop the simulator in 10 s; it printed {output!r}")
        finally:
            if process.stdout is not None:
                process.stdout.close()


def _post(base: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(base + "/", data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_it_takes_what_is_signed_with_the_subscriptions_secret(
    simulator: tuple[str, str],
) -> None:
    base, secret = simulator
    body = json.dumps({"distribution_id": "d1", "redaction_profile": "police"}).encode()
    msg_id = str(uuid.uuid4())
    good = signing.webhook_headers([secret], msg_id, body, datetime.now(UTC))
    bad = signing.webhook_headers([new_secret()], msg_id, body, datetime.now(UTC))

    assert _post(base, body, {**good, "content-type": "application/json"}) == 202
    assert _post(base, body, {**bad, "content-type": "application/json"}) == 401
    with urllib.request.urlopen(base + "/_sim/stats", timeout=5) as response:  # noqa: S310
        stats = json.load(response)
    assert (stats["accepted"], stats["invalid_signature"]) == (1, 1)
