"""`gateway simulate-partner` (the partner's receiver for drills) and `simulate-112`, as
real processes."""

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from queue_support import unused_port
from samples import new_secret

from gateway import signing

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


@contextmanager
def _simulating(
    command: str, secret: str, *, ignoring_sigint: bool = False
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``gateway <command>`` as a process; answers its base URL once it answers."""
    port = unused_port()
    argv = [str(ROOT / ".venv/bin/gateway"), command, "--secret", secret, "--port", str(port)]
    if ignoring_sigint:
        argv = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *argv]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(base + "/_sim/stats", timeout=1):  # noqa: S310
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[0].decode()[-2000:]
                assert time.monotonic() < deadline, f"{command} never answered"
                time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture
def simulator() -> Iterator[tuple[str, str]]:
    secret = new_secret()
    with _simulating("simulate-partner", secret) as (base, process):
        yield base, secret
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize("command", ["simulate-partner", "simulate-112"])
@pytest.mark.parametrize(
    ("sig", "ignoring_sigint"),
    [
        (signal.SIGTERM, False),  # docker compose stop; a container's PID 1 has no default
        (signal.SIGINT, False),  # Ctrl-C
        (signal.SIGINT, True),  # Ctrl-C reaching a shell's background job, which ignores it
    ],
    ids=["sigterm", "sigint", "sigint-ignored-by-the-parent"],
)
def test_a_simulator_stops_on_sigterm_and_sigint(
    command: str, sig: signal.Signals, ignoring_sigint: bool
) -> None:
    with _simulating(command, new_secret(), ignoring_sigint=ignoring_sigint) as (_, process):
        process.send_signal(sig)
        try:
            assert process.wait(timeout=10) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"{command} did not stop on {sig.name} within 10 s")


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
