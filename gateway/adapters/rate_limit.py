"""Request rate limits per source IP and per bearer token: token buckets, 429 when empty.

The buckets live in the process: with several gateway processes each keeps its own,
so the effective limit is the per-process one times the number of processes. The
source is the peer address of the connection; behind a reverse proxy that is the
proxy's, and the proxy should limit per client itself.
"""

import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.adapters.auth import bearer_token
from gateway.adapters.problems import problem_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BUCKETS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One bucket per key, ``burst`` deep, refilled at ``per_s`` tokens a second."""

    def __init__(
        self, *, per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_s = per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when granted, else seconds until one is there."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_s)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.per_s

    def _forget_full(self, now: float) -> None:
        """Keep memory bounded: a bucket that has refilled is the same as no bucket."""
        if len(self._buckets) < MAX_BUCKETS:
            return
        refill_s = self.burst / self.per_s
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items() if now - bucket.updated < refill_s
        }


def rate_limit_middleware(buckets: TokenBuckets) -> Middleware:
    """429 problem+json with ``Retry-After`` once a source IP or a token has used its burst."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        keys = [f"ip:{request.remote or 'unknown'}"]
        token = bearer_token(request)
        if token is not None:
            keys.append("token:" + hashlib.sha256(token.encode()).hexdigest())
        wait_s = max(buckets.take(key) for key in keys)
        if wait_s > 0:
            return problem_response(
                429,
                slug="too-many-requests",
                detail="Too many requests from this source or token; retry after Retry-After.",
                headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
            )
        return await handler(request)

    return middleware
