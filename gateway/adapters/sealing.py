"""Personal data at rest: AES-256-GCM with a key id beside the data, so keys can rotate.

A sealed value is ``GWS1 | len(kid) | kid | nonce (12) | ciphertext+tag``. The header and
the caller's ``aad`` (the row and column it belongs to) are authenticated with the data,
so a sealed value copied into another row, or one whose key id was edited, does not
open. Keys come from ``GATEWAY_DATA_KEYS``: ``kid:base64key`` pairs, comma- or
space-separated, 32-byte keys; the first seals, every one opens.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import SealedDataUnreadable

MAGIC = b"GWS1"
KEY_BYTES = 32
NONCE_BYTES = 12
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def row_aad(table: str, column: str, row_key: str) -> bytes:
    """What a sealed value is bound to: its table, column and the row's identity."""
    return f"{table}.{column}\x00{row_key}".encode()


def parse_keys(text: str) -> dict[str, bytes]:
    """``"kid1:base64key,kid2:base64key"`` → ``{kid: key}`` in the given order.

    Raises ``ValueError`` naming what is wrong (never quoting a key).
    """
    keys: dict[str, bytes] = {}
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        kid, sep, encoded = item.partition(":")
        if not sep or not _KID.match(kid):
            raise ValueError(
                "each data key is kid:base64key, the kid 1-32 letters, digits, '.', '_' or '-'"
            )
        if kid in keys:
            raise ValueError(f"data key id {kid!r} is given twice")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"data key {kid!r} is not base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(f"data key {kid!r} must be {KEY_BYTES} bytes, not {len(key)}")
        keys[kid] = key
    if not keys:
        raise ValueError("no data key given")
    return keys


def new_data_key(kid: str | None = None) -> str:
    """A fresh ``kid:base64key`` for ``GATEWAY_DATA_KEYS``."""
    kid = kid or f"k{secrets.token_hex(4)}"
    if not _KID.match(kid):
        raise ValueError("a key id is 1-32 letters, digits, '.', '_' or '-'")
    return f"{kid}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


class Sealer:
    """Seals with the current (first) key, opens with any key it holds."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ValueError("a sealer needs at least one key")
        for kid, key in keys.items():
            if not _KID.match(kid) or len(key) != KEY_BYTES:
                raise ValueError(f"data key {kid!r}: bad id or not {KEY_BYTES} bytes")
        self._ciphers = MappingProxyType({kid: AESGCM(key) for kid, key in keys.items()})
        self.current_kid = next(iter(keys))

    @classmethod
    def from_setting(cls, text: str) -> Sealer:
        return cls(parse_keys(text))

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        kid = self.current_kid.encode()
        header = MAGIC + bytes([len(kid)]) + kid + secrets.token_bytes(NONCE_BYTES)
        nonce = header[-NONCE_BYTES:]
        return header + self._ciphers[self.current_kid].encrypt(nonce, plain, header + aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """The plain bytes; ``SealedDataUnreadable`` for anything that is not sealed data
        this sealer's keys wrote for ``aad``."""
        kid, header = _header(sealed)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealedDataUnreadable(
                f"personal data sealed under key {kid!r}, which GATEWAY_DATA_KEYS does not "
                f"hold (it holds {', '.join(map(repr, self._ciphers))})"
            )
        try:
            return cipher.decrypt(header[-NONCE_BYTES:], sealed[len(header) :], header + aad)
        except InvalidTag:
            raise SealedDataUnreadable(
                f"personal data sealed under key {kid!r} does not open: GATEWAY_DATA_KEYS has "
                "a different key under that id, or the stored value was altered or moved"
            ) from None


def key_id_of(sealed: bytes) -> str:
    """The id of the key a value was sealed with."""
    return _header(sealed)[0]


def _header(sealed: bytes) -> tuple[str, bytes]:
    if len(sealed) < len(MAGIC) + 1 or not sealed.startswith(MAGIC):
        raise SealedDataUnreadable("a stored value that should be sealed is not")
    size = sealed[len(MAGIC)]
    end = len(MAGIC) + 1 + size + NONCE_BYTES
    kid_bytes = sealed[len(MAGIC) + 1 : len(MAGIC) + 1 + size]
    if len(sealed) < end + 16:
        raise SealedDataUnreadable("a sealed value is cut short")
    try:
        kid = kid_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise SealedDataUnreadable("a sealed value has a malformed key id") from None
    return kid, sealed[:end]
