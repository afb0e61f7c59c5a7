"""Settings that cannot work stop the gateway at start-up, named by variable and never
quoting a value: a 112 endpoint it could not sign for, a failover without 112."""

import os
from typing import Any

import pytest
from pydantic import ValidationError

from gateway import cli
from gateway.settings import Settings

URL = "http://127.0.0.1:9/v1/messages"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "ops-token-that-must-never-be-printed"


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        ({}, None),
        ({"c112_url": URL, "c112_secret": SECRET}, None),
        ({"c112_secret": SECRET}, None),  # an API process checking 112's receipts
        ({"c112_url": URL, "c112_secret": SECRET, "c112_failover_url": URL}, None),
        ({"c112_url": URL}, "GATEWAY_C112_URL needs GATEWAY_C112_SECRET"),
        ({"c112_secret": SECRET, "c112_failover_url": URL}, "GATEWAY_C112_FAILOVER_URL"),
    ],
)
def test_112_is_configured_whole_or_not_at_all(given: dict[str, Any], refused: str | None) -> None:
    if refused is None:
        Settings.model_validate(given)
        return
    with pytest.raises(ValidationError, match=refused):
        Settings.model_validate(given)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GATEWAY_C112_URL": URL}, "  GATEWAY_C112_URL needs GATEWAY_C112_SECRET"),
        ({"GATEWAY_HTTP_PORT": "eighty"}, "  GATEWAY_HTTP_PORT: Input should be a valid integer"),
    ],
)
def test_a_command_with_settings_that_cannot_work_says_which_and_quotes_nothing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    named: str,
) -> None:
    for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_OPS_TOKEN", TOKEN)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert cli.main(["serve"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("gateway: the configuration is not valid:\n")
    assert named in err
    assert TOKEN not in err
    assert "Traceback" not in err
