"""Escalation alerts summed up: one summary per kind and recipient a window, with a count."""

from collections.abc import MutableMapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway import escalation
from gateway.alert_digest import AlertDigest, AlertSummary
from gateway.bootstrap import escalation_alerts
from gateway.model import Timer
from gateway.settings import Settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
S = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def test_a_burst_gives_one_summary_with_its_count_a_window_after_it_began() -> None:
    digest = AlertDigest(MINUTE)
    for n in range(40):
        digest.add("delivery.at_risk", "c112", T0 + n * S)
    digest.add("delivery.at_risk", "partner-7", T0 + 30 * S)

    assert digest.due(T0 + 59 * S) == []
    assert digest.due(T0 + MINUTE) == [
        AlertSummary("delivery.at_risk", "c112", 40, T0, T0 + 39 * S)
    ]
    assert digest.due(T0 + MINUTE) == [], "each summary is given once"
    assert digest.due(T0 + 90 * S) == [
        AlertSummary("delivery.at_risk", "partner-7", 1, T0 + 30 * S, T0 + 30 * S)
    ]


def test_alerts_after_a_summary_start_the_next_window() -> None:
    digest = AlertDigest(MINUTE)
    digest.add("delivery.at_risk", "c112", T0)
    digest.add("delivery.deadline_missed", "c112", T0 + S)
    assert [s.alert for s in digest.due(T0 + MINUTE)] == ["delivery.at_risk"]
    digest.add("delivery.at_risk", "c112", T0 + 61 * S)
    digest.add("delivery.at_risk", "c112", T0 + 62 * S)
    assert [(s.alert, s.count) for s in digest.due(T0 + 61 * S + MINUTE)] == [
        ("delivery.deadline_missed", 1),
        ("delivery.at_risk", 2),
    ]


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        AlertDigest(timedelta(0))


def fired(kind: str, n: int) -> Timer:
    return Timer(
        timer_id=f"d-{n}:{kind}",
        kind=kind,
        case_id=f"urn:case:{n}",
        subject=f"d-{n}",
        fire_at=T0,
        data={"recipient": "c112", "deadline_at": T0.isoformat()},
    )


def test_the_timer_service_round_logs_each_escalation_and_one_summary_a_minute() -> None:
    now = [T0]
    settings = Settings.model_validate(
        {"c112_url": "http://127.0.0.1:9/v1/messages", "c112_secret": SECRET}
    )
    after_round = escalation_alerts(settings, lambda: now[0])

    def round_at(at: datetime, timers: Sequence[Timer]) -> list[MutableMapping[str, Any]]:
        now[0] = at
        with capture_logs() as logs:
            after_round(timers)
        return logs

    first = round_at(T0, [fired(escalation.AT_RISK, n) for n in range(30)])
    assert [e["event"] for e in first] == ["ops_alert"] * 30
    assert {(e["alert"], e["recipient"], e["failover"]) for e in first} == {
        (escalation.AT_RISK, "c112", False)
    }
    second = round_at(T0 + 30 * S, [fired(escalation.AT_RISK, n) for n in range(30, 50)])
    assert [e["event"] for e in second] == ["ops_alert"] * 20
    assert round_at(T0 + 59 * S, []) == []
    summaries = round_at(T0 + MINUTE, [])
    assert [(e["event"], e["alert"], e["recipient"], e["count"]) for e in summaries] == [
        ("ops_alert.summary", escalation.AT_RISK, "c112", 50)
    ]
    assert round_at(T0 + 2 * MINUTE, []) == []
    sla = Timer("t", "sla.warning", "urn:case:1", "urn:case:1#sop1", T0, {"step": "1"})
    assert round_at(T0 + 3 * MINUTE, [sla]) == [], "SLA timers are not delivery alerts"
