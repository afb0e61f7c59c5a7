"""Standard Webhooks signatures (v1, HMAC-SHA256), both directions.

Secrets are ``whsec_`` + base64 of the key. Several secrets may be in force at once
(rotation): outbound messages carry one signature per secret, inbound messages pass
when any of their signatures matches any secret.
"""

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime

from gateway.errors import SignatureInvalid

SECRET_PREFIX = "whsec_"  # noqa: S105 -- the format's prefix, not a secret
DEFAULT_TOLERANCE_S = 300


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; raises ``ValueError`` for a malformed one."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise ValueError("webhook secret is not base64 after the whsec_ prefix") from exc
    if len(key) < 16:
        raise ValueError("webhook secret must hold at least 16 bytes")
    return key


def split_secrets(value: str) -> list[str]:
    """Secrets given as one space- or comma-separated setting."""
    return [s for s in value.replace(",", " ").split() if s]


def _encodable(text: str) -> bool:
    """False for text holding lone surrogates (aiohttp decodes raw header bytes to them)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature``: one ``v1,<base64>`` per secret, space-delimited."""
    return " ".join(
        "v1," + base64.b64encode(_signature(secret_key(s), msg_id, timestamp, body)).decode()
        for s in secrets
    )


def webhook_headers(
    secrets: Sequence[str], msg_id: str, body: bytes, now: datetime
) -> dict[str, str]:
    """Every header of a signed push, ``Idempotency-Key`` included."""
    timestamp = int(now.timestamp())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "idempotency-key": msg_id,
    }


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> tuple[str, int]:
    """Check a signed request; answers its ``(webhook-id, webhook-timestamp)``.

    ``headers`` must look names up case-insensitively (aiohttp's do). Raises
    ``SignatureInvalid`` with an S0 reason.
    """
    msg_id = headers.get("webhook-id")
    raw_timestamp = headers.get("webhook-timestamp")
    raw_signatures = headers.get("webhook-signature")
    if not (msg_id and raw_timestamp and raw_signatures):
        raise SignatureInvalid("missing webhook-id, webhook-timestamp or webhook-signature")
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit()) or len(raw_timestamp) > 12:
        raise SignatureInvalid("webhook-timestamp is not unix seconds")
    if not _encodable(msg_id):
        raise SignatureInvalid("webhook-id is not valid text")
    timestamp = int(raw_timestamp)
    if abs(now.timestamp() - timestamp) > tolerance_s:
        raise SignatureInvalid("webhook-timestamp is outside the tolerance")
    offered: list[bytes] = []
    for item in raw_signatures.split(" "):
        version, _, encoded = item.partition(",")
        if version != "v1":
            continue
        try:
            offered.append(base64.b64decode(encoded, validate=True))
        except ValueError:  # binascii.Error, or non-ASCII text
            continue
    for secret in secrets:
        expected = _signature(secret_key(secret), msg_id, timestamp, body)
        # every comparison runs, so timing does not tell which secret matched
        matches = [hmac.compare_digest(expected, candidate) for candidate in offered]
        if any(matches):
            return msg_id, timestamp
    raise SignatureInvalid("no matching signature")
