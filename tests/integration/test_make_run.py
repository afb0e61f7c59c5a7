"""`make run` from the repository: readiness, and a posted sample reaching the simulator."""

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_support import delete_served_namespace
from queue_support import unused_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback test URL
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_HTTP_PORT=str(unused_port()),
        GATEWAY_NAMESPACE=f"t{uuid.uuid4().hex[:10]}",
        GATEWAY_DATABASE_URL=f"sqlite:///{tmp_path / 'gw.sqlite3'}",
        GATEWAY_LOG_JSON="true",
        SIM_112_PORT=str(unused_port()),
        DEV_ENV_FILE=str(tmp_path / "dev.env"),
    )
    log = (tmp_path / "make-run.log").open("wb")
    process = subprocess.Popen(
        ["make", "-s", "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        delete_served_namespace(tmp_path, env)


@pytest.mark.timeout(90)
def test_make_run_serves_ready_and_delivers_a_posted_sample(make_run: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{make_run['GATEWAY_HTTP_PORT']}"
    deadline = time.monotonic() + 60
    while _get(base + "/readyz")[0] != 200:
        assert time.monotonic() < deadline, "make run never became ready"
        time.sleep(0.2)

    dev_env = dict(
        line.split("=", 1) for line in Path(make_run["DEV_ENV_FILE"]).read_text().splitlines()
    )
    sent = subprocess.run(
        [
            str(ROOT / ".venv/bin/gateway"),
            "send-report",
            "tests/fixtures/valid-01-app-basic.json",
            "--url",
            base + "/v1/reports/si-lacak-perak",
            "--secret",
            dev_env["DEV_INBOUND_SECRET"],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
    )
    assert sent.stdout.startswith("202 "), sent.stdout + sent.stderr
    case_id = json.loads(sent.stdout[4:])["case_id"]

    sim = f"http://127.0.0.1:{make_run['SIM_112_PORT']}/_sim/messages"
    deadline = time.monotonic() + 10
    while True:
        status, body = _get(sim)
        if status == 200 and (messages := json.loads(body)):
            break
        assert time.monotonic() < deadline, "the simulator received nothing"
        time.sleep(0.1)
    assert [m["body"]["case_id"] for m in messages] == [case_id]
    assert messages[0]["signature_valid"] is True
