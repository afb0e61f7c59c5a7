"""``gateway serve`` as a process of its own: what it does once, at start."""

import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from gateway_support import serve_env, serving
from queue_support import unused_port


@pytest.mark.timeout(60)
def test_serve_keeps_its_start_up_heap_out_of_later_collections(tmp_path: Path) -> None:
    port = unused_port()
    env = serve_env(
        GATEWAY_HTTP_PORT=str(port),
        GATEWAY_NAMESPACE=f"t{uuid.uuid4().hex[:10]}",
        GATEWAY_DATABASE_URL=f"sqlite:///{tmp_path / 'gw.sqlite3'}",
    )
    with serving(tmp_path, env):
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "gateway serve never answered"
                time.sleep(0.2)
    lines = (tmp_path / "serve.log").read_text().splitlines()
    serving_line = next(json.loads(line) for line in lines if '"gateway.serving"' in line)
    assert serving_line["frozen_objects"] > 10_000, "gc.freeze() after start-up"
