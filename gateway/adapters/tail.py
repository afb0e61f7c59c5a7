"""``gateway tail``: the live delivery log in a terminal, read from a gateway's ops stream."""

import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import aiohttp

COLOURS = {"delivered": "\x1b[32m", "retry": "\x1b[33m", "parked": "\x1b[31m", "gone": "\x1b[31m"}
RESET = "\x1b[0m"


def render(entry: Mapping[str, Any], *, colour: bool) -> str:
    """One line: JSON when not on a terminal, aligned columns (coloured) when on one."""
    if not colour:
        return json.dumps(entry, sort_keys=True)
    code = entry.get("status_code") or entry.get("error_class") or ""
    latency = entry.get("latency_ms")
    latency_text = f"{latency:.0f} ms" if isinstance(latency, int | float) else ""
    outcome = str(entry.get("outcome", ""))
    return (
        f"{entry.get('at', '')}  {entry.get('case_id', '')}  {entry.get('recipient', ''):<12} "
        f"#{entry.get('attempt', '')}  {COLOURS.get(outcome, '')}{outcome:<9}{RESET} "
        f"{code!s:<16} {latency_text}"
    )


async def tail(
    base_url: str,
    token: str,
    filters: Mapping[str, str],
    *,
    out: TextIO = sys.stdout,
    colour: bool | None = None,
    limit: int | None = None,
) -> int:
    """Print attempts as they are logged; ``limit`` stops after that many (for scripts)."""
    use_colour = out.isatty() if colour is None else colour
    url = base_url.rstrip("/") + "/v1/ops/deliveries/stream"
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    printed = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, params=dict(filters), headers=headers) as response,
    ):
        if response.status != 200:
            print(f"{response.status} {await response.text()}", file=sys.stderr)
            return 1
        data = ""
        async for raw in response.content:
            line = raw.decode()
            if line.startswith("data: "):
                data += line[6:].rstrip("\n")
            elif line in ("\n", "\r\n") and data:
                print(render(json.loads(data), colour=use_colour), file=out, flush=True)
                data = ""
                printed += 1
                if limit is not None and printed >= limit:
                    return 0
    return 0
