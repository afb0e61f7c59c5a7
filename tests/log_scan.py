"""The whole-run log scan: every log line written during the test run is checked for
the personal data of the fixture reports.

``tests/conftest.py`` points the gateway's logging at ``RUN_SCAN`` before each test
(a test may point it elsewhere for itself) and fails the run when a line leaked. Tests
that run the gateway as a subprocess feed its log file to ``RUN_SCAN`` when it stops.
"""

import io
import os
from dataclasses import dataclass

from samples import personal_strings


@dataclass
class Leak:
    test: str
    found: list[str]
    line_chars: int


class LogScan(io.StringIO):
    """A text stream that keeps no lines, only where personal data showed up."""

    def __init__(self, personal: frozenset[str]) -> None:
        super().__init__()
        self.personal = personal
        self.leaks: list[Leak] = []
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        found = sorted(s for s in self.personal if s in text)
        if found:
            test = os.environ.get("PYTEST_CURRENT_TEST", "outside a test")
            self.leaks.append(Leak(test=test, found=found, line_chars=len(text)))
        return len(text)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def report(self) -> list[str]:
        return [f"{leak.test}: {', '.join(leak.found)}" for leak in self.leaks]


RUN_SCAN = LogScan(frozenset(personal_strings()))
