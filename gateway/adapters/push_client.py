"""The outbound HTTP client: one signed POST to a recipient, aiohttp errors translated.

It reports whatever status the recipient answered; what a status means is the
delivery policy's decision. Only failures to get an answer at all become
``TransientDeliveryError``, labelled with an S0 ``error_class``:

    TimeoutError, aiohttp.ServerTimeoutError         → timeout
    aiohttp.ServerDisconnectedError                  → disconnected
    aiohttp.ClientSSLError, ServerFingerprintMismatch → tls_error
    any other aiohttp.ClientConnectionError           → connection_error
      (ClientConnectorError, ClientOSError, ClientConnectionResetError...)
    any other aiohttp.ClientError                     → client_error
"""

import asyncio
import time
from collections.abc import Mapping

import aiohttp

from gateway.errors import TransientDeliveryError
from gateway.model import PushResponse

BODY_HEAD_BYTES = 512


class HttpPusher:
    """``gateway.ports.Pusher`` over an aiohttp session owned by the composition root."""

    def __init__(self, session: aiohttp.ClientSession, timeout_s: float) -> None:
        self._session = session
        self._timeout_s = timeout_s

    async def push(self, url: str, body: bytes, headers: Mapping[str, str]) -> PushResponse:
        """POST ``body``; answers the status, latency, headers (names lower-cased) and
        the first 512 bytes of the answer. Redirects are not followed: the signed case
        goes to the configured address or nowhere."""
        started = time.monotonic()
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                self._session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as response,
            ):
                head = await _read_head(response.content, BODY_HEAD_BYTES)
                return PushResponse(
                    status=response.status,
                    latency_s=time.monotonic() - started,
                    headers={name.lower(): value for name, value in response.headers.items()},
                    body_head=head.decode(errors="replace"),
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise translate_error(exc) from exc


def translate_error(exc: TimeoutError | aiohttp.ClientError) -> TransientDeliveryError:
    """The delivery error standing for a timeout or an aiohttp client failure."""
    if isinstance(exc, TimeoutError):  # also aiohttp.ServerTimeoutError
        return TransientDeliveryError("timeout")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransientDeliveryError("disconnected")
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        return TransientDeliveryError("tls_error", type(exc).__name__)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return TransientDeliveryError("connection_error", type(exc).__name__)
    return TransientDeliveryError("client_error", type(exc).__name__)


async def _read_head(stream: aiohttp.StreamReader, limit: int) -> bytes:
    head = b""
    while len(head) < limit:
        chunk = await stream.read(limit - len(head))
        if not chunk:
            break
        head += chunk
    return head
