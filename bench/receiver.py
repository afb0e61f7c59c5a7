"""The benchmark's 112: a fast receiver in its own process.

It verifies nothing heavy: it takes the time of arrival first (``time.monotonic_ns``,
Linux's system-wide CLOCK_MONOTONIC, so the load generator in another process reads the
same clock), then keys the message by the report it carries (``content.source.reference``
of a gateway envelope, ``id_laporan`` of a raw report the baseline forwards).

``POST /v1/messages``   take a message; answer 202, or the status the mode says
``GET /_bench/count``   ``{"received", "refused", "duplicates"}``
``GET /_bench/receipts`` every first arrival: ``{"arrivals": [[reference, t_ns, deadline_at]]}``
                        in arrival order, plus the counts
``PUT /_bench/mode``    ``{"status": 202}`` (503 to refuse everything)
``DELETE /_bench/receipts`` forget everything
"""

import argparse
import json
import time
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web


@dataclass
class ReceiverState:
    status: int = 202
    seen: set[str] = field(default_factory=set)
    arrivals: list[tuple[str, int, str | None]] = field(default_factory=list)
    refused: int = 0
    duplicates: int = 0
    unreadable: int = 0

    def forget(self) -> None:
        self.seen.clear()
        self.arrivals.clear()
        self.refused = self.duplicates = self.unreadable = 0

    def counts(self) -> dict[str, int]:
        return {
            "received": len(self.arrivals),
            "refused": self.refused,
            "duplicates": self.duplicates,
            "unreadable": self.unreadable,
        }


STATE: Final = web.AppKey("bench_receiver", ReceiverState)


def reference_of(message: Any) -> tuple[str | None, str | None]:
    """The report reference a message carries, and its ``deadline_at`` if it has one."""
    if not isinstance(message, dict):
        return None, None
    content = message.get("content")
    if isinstance(content, dict):
        source = content.get("source")
        if isinstance(source, dict) and isinstance(source.get("reference"), str):
            deadline = message.get("deadline_at")
            return source["reference"], deadline if isinstance(deadline, str) else None
    reference = message.get("id_laporan")
    return (reference, None) if isinstance(reference, str) else (None, None)


async def _receive(request: web.Request) -> web.Response:
    arrived = time.monotonic_ns()
    state = request.app[STATE]
    raw = await request.read()
    if not 200 <= state.status < 300:
        state.refused += 1
        return web.Response(status=state.status, headers={"Retry-After": "1"})
    try:
        reference, deadline = reference_of(json.loads(raw))
    except ValueError:
        reference, deadline = None, None
    if reference is None:
        state.unreadable += 1
        return web.Response(status=400)
    if reference in state.seen:
        state.duplicates += 1
    else:
        state.seen.add(reference)
        state.arrivals.append((reference, arrived, deadline))
    return web.Response(status=202)


async def _count(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].counts())


async def _receipts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({**state.counts(), "arrivals": state.arrivals})


async def _forget(request: web.Request) -> web.Response:
    request.app[STATE].forget()
    return web.Response(status=204)


async def _mode(request: web.Request) -> web.Response:
    wanted = await request.json()
    status = int(wanted["status"])
    if not 200 <= status <= 599:
        return web.Response(status=400)
    request.app[STATE].status = status
    return web.json_response({"status": status})


def create_app() -> web.Application:
    app = web.Application()
    app[STATE] = ReceiverState()
    app.router.add_post("/v1/messages", _receive)
    app.router.add_get("/_bench/count", _count)
    app.router.add_get("/_bench/receipts", _receipts)
    app.router.add_delete("/_bench/receipts", _forget)
    app.router.add_put("/_bench/mode", _mode)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmark's fast 112 receiver")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
