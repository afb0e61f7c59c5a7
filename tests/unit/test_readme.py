"""The README stays true: its configuration table is the settings' own."""

import re
from pathlib import Path

from gateway.settings import settings_table

README = Path(__file__).parents[2] / "README.md"


def test_configuration_table_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(
        r"<!-- config-table:start[^>]*-->\n(.*?)<!-- config-table:end -->", text, re.S
    )
    assert match, "README.md lost its configuration table markers"
    assert match.group(1) == settings_table(), "run `gateway config-table` and paste it into README"


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```")[1]
    assert "make run" in first_block
    assert "make test" in first_block
