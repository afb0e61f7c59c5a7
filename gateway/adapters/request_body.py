"""Reading a request body safely: size limit, read timeout, media type, strict JSON, and
limits on nesting depth, array length, object size and string length.

The raw bytes are always returned with the refusal so the caller can quarantine them.
"""

import asyncio
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from contracts.problem import FieldError
from gateway.adapters.problems import problem_response
from gateway.si_lacak_perak import pointer

JSON_MEDIA_TYPES = frozenset({"application/json"})
DEFAULT_BODY_TIMEOUT_S = 10.0
MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """Shape limits checked on parsed JSON before any model sees it."""

    max_depth: int = 32
    max_array_items: int = 100
    max_object_members: int = 100
    max_string_chars: int = 10_000
    max_key_chars: int = 100


DEFAULT_LIMITS = JsonLimits()


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


def _pointer_part(key: str | int) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _pointer(path: tuple[str | int, ...]) -> str:
    return "".join(f"/{_pointer_part(key)}" for key in path)


def _limit_errors(value: Any, limits: JsonLimits) -> list[FieldError]:
    """Every place ``value`` breaks ``limits``, named by JSON pointer; never the value."""
    errors: list[FieldError] = []

    def refuse(path: tuple[str | int, ...], detail: str) -> None:
        errors.append(FieldError(pointer=_pointer(path), detail=detail))

    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack and len(errors) < MAX_REPORTED_ERRORS:
        node, path = stack.pop()
        if isinstance(node, str):
            if len(node) > limits.max_string_chars:
                refuse(path, f"longer than {limits.max_string_chars} characters")
            continue
        if not isinstance(node, dict | list):
            continue
        if len(path) >= limits.max_depth:
            refuse(path, f"nests deeper than {limits.max_depth} levels")
            continue
        if isinstance(node, list):
            if len(node) > limits.max_array_items:
                refuse(path, f"has more than {limits.max_array_items} items")
                continue
            children: list[tuple[str | int, Any]] = list(enumerate(node))
        else:
            if len(node) > limits.max_object_members:
                refuse(path, f"has more than {limits.max_object_members} members")
                continue
            if any(len(key) > limits.max_key_chars for key in node):
                refuse(path, f"has a key longer than {limits.max_key_chars} characters")
                continue
            children = list(node.items())
        for key, child in reversed(children):
            stack.append((child, (*path, key)))
    return errors


def parse_json(raw: bytes, limits: JsonLimits = DEFAULT_LIMITS) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, within ``limits``.

    Raises ``BodyRefused``: 400 when it is not JSON, 422 naming each offending place.
    """
    value = _strict_json(raw)
    errors = _limit_errors(value, limits)
    if errors:
        raise BodyRefused(
            422, "limits-exceeded", "The body exceeds the gateway's limits.", raw, tuple(errors)
        )
    return value


def _strict_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyRefused(400, "malformed-body", "The body is not valid UTF-8.", raw) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except _DuplicateKey as exc:
        pointer = "/" + _pointer_part(str(exc))
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


async def read_json_bytes(
    request: web.Request, max_bytes: int, timeout_s: float = DEFAULT_BODY_TIMEOUT_S
) -> bytes:
    """The raw body of a JSON request, or ``BodyRefused`` (408, 413, 415).

    A declared ``Content-Length`` over the limit is refused before any of it is read;
    a body that has not fully arrived within ``timeout_s`` is refused with what came.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyRefused(413, "body-too-large", f"The body exceeds {max_bytes} bytes.")
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(timeout_s):
            await _read_capped(request, max_bytes, chunks)
    except TimeoutError:
        raise BodyRefused(
            408,
            "body-timeout",
            f"The body did not arrive within {timeout_s:g} s.",
            b"".join(chunks),
        ) from None
    raw = b"".join(chunks)
    if request.content_type not in JSON_MEDIA_TYPES:
        raise BodyRefused(415, "unsupported-media-type", "Send application/json.", raw)
    return raw


async def _read_capped(request: web.Request, max_bytes: int, chunks: list[bytes]) -> None:
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise BodyRefused(413, "body-too-large", f"The body exceeds {max_bytes} bytes.")
        chunks.append(chunk)


M = TypeVar("M", bound=BaseModel)


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as pointers and reasons, never the submitted values."""
    return [
        FieldError(pointer=pointer(error["loc"]), detail=error["msg"])
        for error in exc.errors(include_url=False, include_input=False)
    ]


def parse_model(raw: bytes, model: type[M], *, slug: str, detail: str) -> M:
    """Strict JSON into ``model``; ``BodyRefused`` (400/422) naming each wrong field."""
    try:
        return model.model_validate(parse_json(raw))
    except ValidationError as exc:
        raise BodyRefused(422, slug, detail, raw, tuple(field_errors(exc))) from None


def refused_problem(refused: BodyRefused) -> web.Response:
    return problem_response(
        refused.status,
        slug=refused.slug,
        detail=refused.detail,
        errors=list(refused.errors) or None,
    )
