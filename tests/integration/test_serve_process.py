"""``gateway serve`` as a process of its own: what it does once, at start, and that a
test serving it leaves nothing on the broker."""

import asyncio
import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from gateway_support import queues_on_broker, serve_env, serving
from queue_support import unused_port

from gateway.settings import Settings


def _env(tmp_path: Path, port: int, namespace: str) -> dict[str, str]:
    return serve_env(
        GATEWAY_HTTP_PORT=str(port),
        GATEWAY_NAMESPACE=namespace,
        GATEWAY_DATABASE_URL=f"sqlite:///{tmp_path / 'gw.sqlite3'}",
    )


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, "gateway serve never became ready"
            time.sleep(0.2)


@pytest.mark.timeout(60)
def test_serve_keeps_its_start_up_heap_out_of_later_collections(tmp_path: Path) -> None:
    port = unused_port()
    with serving(tmp_path, _env(tmp_path, port, f"t{uuid.uuid4().hex[:10]}")):
        _wait_ready(port)
    lines = (tmp_path / "serve.log").read_text().splitlines()
    serving_line = next(json.loads(line) for line in lines if '"gateway.serving"' in line)
    assert serving_line["frozen_objects"] > 10_000, "gc.freeze() after start-up"


@pytest.mark.timeout(60)
def test_a_served_gateway_leaves_none_of_its_queues_on_the_broker(tmp_path: Path) -> None:
    port = unused_port()
    namespace = f"t{uuid.uuid4().hex[:10]}"
    # the process is given no ladder: it declares the default one, not the tests' shorter
    default_ladder = Settings.model_validate({"namespace": namespace})
    with serving(tmp_path, _env(tmp_path, port, namespace)):
        _wait_ready(port)
        declared = asyncio.run(queues_on_broker(default_ladder))
    assert f"{namespace}.retry.600s" in declared
    assert asyncio.run(queues_on_broker(default_ladder)) == []
