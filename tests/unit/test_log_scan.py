"""The whole-run log scan finds personal data in whatever the gateway logs."""

import structlog
from log_scan import LogScan
from samples import personal_strings

from gateway.logs import configure_logging


def test_personal_data_that_slips_into_a_line_is_found() -> None:
    scan = LogScan(frozenset({"Siti Aminah", "081200007801"}))
    configure_logging(json=True, level="debug", stream=scan)
    log = structlog.get_logger("test")
    log.info("clean", case_id="urn:x")
    log.info("dirty", note="called Siti Aminah back")
    assert scan.lines == 2
    [leak] = scan.leaks
    assert leak.found == ["Siti Aminah"]
    assert "test_personal_data_that_slips_into_a_line_is_found" in leak.test


def test_the_scan_looks_for_fixture_names_phones_and_narratives() -> None:
    personal = personal_strings()
    assert len(personal) > 20
    assert any(s.isdigit() and len(s) >= 9 for s in personal)
    assert any(s.istitle() and " " in s for s in personal)
    assert any(len(s) > 60 for s in personal)
