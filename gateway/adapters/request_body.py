"""Reading a request body safely: size limit, media type, strict JSON.

The raw bytes are always returned with the refusal so the caller can quarantine them.
"""

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from contracts.problem import FieldError

JSON_MEDIA_TYPES = frozenset({"application/json"})


@dataclass(frozen=True, slots=True)
class BodyRefused(Exception):
    status: int
    slug: str
    detail: str
    raw: bytes = b""
    errors: tuple[FieldError, ...] = ()


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity. Raises ``BodyRefused``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyRefused(400, "malformed-body", "The body is not valid UTF-8.", raw) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except _DuplicateKey as exc:
        pointer = "/" + str(exc).replace("~", "~0").replace("/", "~1")
        raise BodyRefused(
            422,
            "invalid-report",
            "The body repeats a key.",
            raw,
            (FieldError(pointer=pointer, detail="key appears more than once in one object"),),
        ) from None
    except RecursionError:
        raise BodyRefused(400, "malformed-body", "The body nests too deeply.", raw) from None
    except ValueError:
        raise BodyRefused(400, "malformed-body", "The body is not well-formed JSON.", raw) from None


async def read_json_bytes(request: web.Request, max_bytes: int) -> bytes:
    """The raw body of a JSON request, or ``BodyRefused`` (413, 415)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyRefused(413, "body-too-large", f"The body exceeds {max_bytes} bytes.")
    raw = await _read_capped(request, max_bytes)
    if request.content_type not in JSON_MEDIA_TYPES:
        raise BodyRefused(415, "unsupported-media-type", "Send application/json.", raw)
    return raw


async def _read_capped(request: web.Request, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise BodyRefused(413, "body-too-large", f"The body exceeds {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
