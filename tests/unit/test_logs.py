import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from contracts.case import Area, Callback, ReporterRole
from gateway.logs import (
    CONTRACT_SENSITIVE_KEYS,
    REDACTED,
    SENSITIVE_KEYS,
    configure_logging,
    scrub_personal_data,
    scrub_text,
)

PERSONAL = (
    "Siti Rahmawati",
    "Dewi Lestari",
    "Budi Santoso",
    "0812-0000-7801",
    "+6281200007802",
    "3671114107970001",
    "Jl. Melati No. 12",
    "dekat masjid",
    "memar di lengan kiri",
    "teriakan",
    "-6.2301",
    "s3cret",
)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield stream
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def refuse_phone() -> None:
    raise ValueError("no victim phone 0812 0000 7801")


def log_everything_personal() -> None:
    structlog.contextvars.bind_contextvars(
        case_id="urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A"
    )
    log = structlog.get_logger("gateway.test")
    log.info(
        "report from 0812-0000-7801 accepted",
        source_reference="SLP-20261130-0001",
        report={
            "pelapor": {"nama": "Siti Rahmawati", "no_hp": "0812-0000-7801"},
            "korban": [
                {"nama": "Dewi Lestari", "nik": "3671114107970001", "luka": "memar di lengan kiri"}
            ],
            "lokasi": {
                "alamat": "Jl. Melati No. 12",
                "patokan": "dekat masjid",
                "koordinat": {"lat": -6.2301},
            },
            "kronologi": "Pelapor mendengar teriakan.",
        },
        case={
            "victims": [{"name": "Dewi Lestari", "phone": "+6281200007802"}],
            "perpetrators": [{"name": "Budi Santoso"}],
            "location": {"kecamatan": {"code": "36.71.11"}, "address": "Jl. Melati No. 12"},
        },
        note="callback +6281200007802, NIK 3671114107970001",
        broker="amqp://gateway:s3cret@localhost:5672/",
    )
    try:
        refuse_phone()
    except ValueError:
        log.exception("normalising failed")


@pytest.mark.parametrize("as_json", [True, False])
def test_no_personal_data_reaches_the_output(captured: io.StringIO, as_json: bool) -> None:
    configure_logging(json=as_json, level="info", stream=captured)

    log_everything_personal()

    output = captured.getvalue()
    assert [s for s in PERSONAL if s in output] == []
    assert "SLP-20261130-0001" in output
    assert "01JDXK7Q2M8W3V5T9R6N4B2C1A" in output
    assert "36.71.11" in output
    assert "normalising failed" in output
    assert "ValueError" in output


def test_json_lines_have_utc_iso_timestamps_and_context(captured: io.StringIO) -> None:
    configure_logging(json=True, level="info", stream=captured)

    log_everything_personal()

    first = json.loads(captured.getvalue().splitlines()[0])
    assert first["timestamp"].endswith("Z")
    assert first["level"] == "info"
    assert first["case_id"] == "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A"
    assert first["event"] == f"report from {REDACTED} accepted"
    assert first["report"] == {"pelapor": {}, "korban": [{}], "lokasi": {}}
    assert first["case"] == {"location": {"kecamatan": {"code": "36.71.11"}}}


def test_the_scrubber_runs_right_before_the_renderer(captured: io.StringIO) -> None:
    configure_logging(json=True, level="info", stream=captured)

    processors = structlog.get_config()["processors"]

    assert processors[-2] is scrub_personal_data


def test_the_level_filters(captured: io.StringIO) -> None:
    configure_logging(json=True, level="warning", stream=captured)

    structlog.get_logger().info("quiet")
    structlog.get_logger().warning("loud")

    assert [json.loads(line)["event"] for line in captured.getvalue().splitlines()] == ["loud"]


def test_an_unknown_level_is_refused(captured: io.StringIO) -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging(json=True, level="chatty", stream=captured)


def test_standard_library_records_are_scrubbed_too(captured: io.StringIO) -> None:
    configure_logging(json=True, level="info", stream=captured)

    logging.getLogger("aio_pika").warning("cannot reach amqp://gw:s3cret@rabbit/ for 081200007801")

    line = json.loads(captured.getvalue())
    assert line["logger"] == "aio_pika"
    assert line["event"] == f"cannot reach amqp://gw:{REDACTED}@rabbit/ for {REDACTED}"


def test_configuring_twice_installs_one_handler(captured: io.StringIO) -> None:
    configure_logging(json=True, level="info", stream=io.StringIO())
    configure_logging(json=True, level="info", stream=captured)

    logging.getLogger("aiohttp").warning("once")

    assert len(captured.getvalue().splitlines()) == 1


def test_sensitive_keys_come_from_the_case_contract() -> None:
    assert {"name", "nik", "phone", "narrative", "address", "landmark", "injuries"} <= (
        CONTRACT_SENSITIVE_KEYS
    )
    assert {"code", "level", "sex", "role", "channel", "sha256"}.isdisjoint(SENSITIVE_KEYS)
    assert {"nama", "no_hp", "kronologi", "alamat", "rt", "rw"} <= SENSITIVE_KEYS


@dataclass(frozen=True)
class Message:
    routing_key: str
    body: bytes


@pytest.mark.parametrize(
    ("event", "scrubbed"),
    [
        ({"event": "x", "Name": "Dewi"}, {"event": "x"}),
        ({"event": "x", "reporter": {"role": "self"}}, {"event": "x"}),
        (
            {"event": "x", "items": [{"nama": "a", "usia": 9}, ("08123456789",)]},
            {"event": "x", "items": [{}, [REDACTED]]},
        ),
        (
            {"event": "x", "attempt": 3, "latency_s": 0.0812345678, "ok": True, "next": None},
            {"event": "x", "attempt": 3, "latency_s": 0.0812345678, "ok": True, "next": None},
        ),
        ({"event": "x", "raw": b'{"nama": "Dewi"}'}, {"event": "x", "raw": "<16 bytes>"}),
        (
            {"event": "x", "message": Message("c112", b"{}")},
            {"event": "x", "message": {"routing_key": "c112", "body": "<2 bytes>"}},
        ),
        (
            {"event": "x", "callback": Callback(phone="+6281200007801", role=ReporterRole.SELF)},
            {"event": "x"},
        ),
        (
            {"event": "x", "area": Area(code="36.71.11", name="Pinang")},
            {"event": "x", "area": {"code": "36.71.11"}},
        ),
        (
            {"event": "x", "error": ValueError("bad 081200007801")},
            {"event": "x", "error": f"bad {REDACTED}"},
        ),
    ],
)
def test_scrub_personal_data(event: dict[str, Any], scrubbed: dict[str, Any]) -> None:
    assert scrub_personal_data(None, "info", event) == scrubbed


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("0812-0000-7801", REDACTED),
        ("081200007801", REDACTED),
        ("+62 812 0000 7801", REDACTED),
        ("+62 (0)812-0000-7801", REDACTED),
        ("+6281200007801", REDACTED),
        ("6281200007801", REDACTED),
        ("62 812.0000.7801", REDACTED),
        ("(021) 5555-1234", REDACTED),
        ("021-5555-1234", REDACTED),
        ("hp:0812 0000 7801.", f"hp:{REDACTED}."),
        ("NIK 3671114107970001", f"NIK {REDACTED}"),
        ("2026-11-30T06:45:10.398000+00:00", "2026-11-30T06:45:10.398000+00:00"),
        ("2026-11-30 13:45:10", "2026-11-30 13:45:10"),
        ("0b6a4c1e-8d1f-4f0e-9d55-3c1f8f6e2a10", "0b6a4c1e-8d1f-4f0e-9d55-3c1f8f6e2a10"),
        (
            "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A",
            "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A",
        ),
        ("36.71.11.1002", "36.71.11.1002"),
        ("Rp 625.000.000", "Rp 625.000.000"),
        ("0.0.0.0:8080", "0.0.0.0:8080"),
        ("took 0.0812345678 s", "took 0.0812345678 s"),
        ("1764485110398", "1764485110398"),
        ("http://localhost:8112/v1/push", "http://localhost:8112/v1/push"),
        ("amqp://gw:pw@rabbit:5672/", f"amqp://gw:{REDACTED}@rabbit:5672/"),
        (
            "Input should be a string [type=string_type, input_value='Dewi', input_type=str]",
            f"Input should be a string [type=string_type, input_value={REDACTED}, input_type=str]",
        ),
    ],
)
def test_scrub_text(text: str, scrubbed: str) -> None:
    assert scrub_text(text) == scrubbed


@pytest.mark.parametrize(
    "text",
    ["2026-11-30T06:24:09.878794Z", "06:24:09.878794", "latency 0.912345 s", "2026-11-30"],
)
def test_times_and_numbers_that_are_not_phones_survive(text: str) -> None:
    assert scrub_text(text) == text


def test_any_library_speaks_from_warning_up_even_at_debug(captured: io.StringIO) -> None:
    configure_logging(json=True, level="debug", stream=captured)
    library = logging.getLogger("some.library.nobody.listed")

    library.debug("Remote response: data=Korban Uji 081200007801")
    library.info("connected with Korban Uji")
    library.warning("gave up")

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["gave up"]
