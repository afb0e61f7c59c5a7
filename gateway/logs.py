"""Logging: structlog configured once, personal data scrubbed from every line.

Lines are JSON when the stream is not a terminal, timestamps ISO 8601 in UTC, and
context variables (request id, case id) are merged in. Standard-library loggers
(aiohttp, aio-pika) go through the same scrubber and renderer.

The scrubber drops every key named like an S2/S3 field of the case contract or its
Indonesian source vocabulary, so give S0 values unambiguous keys (``endpoint=``, not
``url=``; ``queue=``, not ``name=``), and masks phone numbers, NIKs, URL passwords and
pydantic's echoed input values in whatever text remains.
"""

import dataclasses
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from pydantic import BaseModel
from structlog.typing import EventDict, Processor, WrappedLogger

from contracts.sensitivity import Sensitivity
from gateway.redaction import FIELD_SENSITIVITY

REDACTED = "[redacted]"

SOURCE_SENSITIVE_KEYS = frozenset(
    {
        "nama",
        "nik",
        "no_hp",
        "kronologi",
        "alamat",
        "patokan",
        "koordinat",
        "luka",
        "tanggal_lahir",
        "id_kader",
        "rt",
        "rw",
        "usia",
        "lampiran",
    }
)
CONTRACT_SENSITIVE_KEYS = frozenset(
    path.rsplit(".", 1)[-1]
    for path, marker in FIELD_SENSITIVITY.items()
    if marker in (Sensitivity.S2, Sensitivity.S3)
)
SENSITIVE_KEYS = CONTRACT_SENSITIVE_KEYS | SOURCE_SENSITIVE_KEYS

_NIK = re.compile(r"(?<!\d)\d{16}(?!\d)")
_PHONE = re.compile(
    r"(?<![\d.])(?<!\d:)"
    r"(?:\+62[\s.-]?(?:\(0\)[\s.-]?)?|62(?=[\s.-]?8)[\s.-]?|\(?0)"
    r"[2-9]\d?\)?(?:[\s.-]{0,2}\d){6,11}(?!\d)"
)
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]+):[^@\s]+@")
_PYDANTIC_INPUT = re.compile(r"input_value=.*?(?=, input_type=)", re.DOTALL)


def scrub_text(text: str) -> str:
    text = _NIK.sub(REDACTED, text)
    text = _PHONE.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    return _PYDANTIC_INPUT.sub(f"input_value={REDACTED}", text)


def _is_sensitive(key: object) -> bool:
    return isinstance(key, str) and key.lower() in SENSITIVE_KEYS


def _scrub(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, BaseModel):
        return _scrub(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _scrub({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, Mapping):
        return {key: _scrub(item) for key, item in value.items() if not _is_sensitive(key)}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item) for item in value]
    return scrub_text(str(value))


def scrub_personal_data(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Drop S2/S3 keys at any depth and mask personal data left in strings."""
    scrubbed: EventDict = _scrub(event_dict)
    return scrubbed


class _GatewayHandler(logging.StreamHandler[TextIO]):
    """The root handler ``configure_logging`` installs (and replaces when called again)."""


def configure_logging(*, json: bool | None, level: str, stream: TextIO | None = None) -> None:
    """Configure structlog and the standard-library root logger; ``json=None`` decides by TTY."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    out = sys.stderr if stream is None else stream
    tty = out.isatty()
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if (not tty if json is None else json)
        else structlog.dev.ConsoleRenderer(colors=tty)
    )
    shared: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            scrub_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )

    handler = _GatewayHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                *shared,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                scrub_personal_data,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _GatewayHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Only libraries log through the standard library (the gateway logs with structlog),
    # and at debug level they log their arguments (SQL parameters, AMQP frames, HTTP
    # bodies): whole reports, which no scrubber can see into. They speak from WARNING up.
    root.setLevel(max(numeric, logging.WARNING))
