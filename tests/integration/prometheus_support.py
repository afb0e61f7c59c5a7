"""Prometheus's own promtool, to check an exposition from outside the library that wrote
it (`scripts/ensure-promtool.sh` puts it in `.tools/`; `make test` runs that)."""

import subprocess
from pathlib import Path

PROMTOOL = Path(__file__).parents[2] / ".tools" / "promtool"


def promtool_problems(exposition: str) -> tuple[int, str]:
    """``promtool check metrics``: its exit status and what it says is wrong."""
    assert PROMTOOL.exists(), "run scripts/ensure-promtool.sh (make test does)"
    checked = subprocess.run(
        [str(PROMTOOL), "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return checked.returncode, (checked.stdout + checked.stderr).strip()
