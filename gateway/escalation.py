"""Deadline escalation of outbound messages: the timers they set and what those do.

Pure. Every message to a recipient with a ``deadline_at``, wherever it is made (intake,
a staff event), gets two timers from ``timers_for``, watching its distribution id
(delivery cancels them): at 80 % of the time to the deadline ``delivery.at_risk``,
at 100 % ``delivery.deadline_missed``. Each publishes an S0 event on the topic
exchange and writes a row to the delivery log; at risk, with failover on, a copy of
the message also goes to the failover recipient (its own queue, its own
``webhook-id``; the envelope inside is unchanged), logged as ``failover_started``.
"""

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime

from gateway.model import (
    AttemptOutcome,
    DeliveryAttempt,
    Destination,
    OutboundMessage,
    Timer,
    TimerEffects,
)
from gateway.routing import routing_key

AT_RISK = "delivery.at_risk"
DEADLINE_MISSED = "delivery.deadline_missed"
KINDS = frozenset({AT_RISK, DEADLINE_MISSED})
AT_RISK_FRACTION = 0.8
FAILOVER_SUFFIX = "_failover"

Handler = Callable[[Timer], TimerEffects]


def failover_recipient(recipient: str) -> str:
    return recipient + FAILOVER_SUFFIX


def failover_id(distribution_id: str) -> str:
    """The distribution id of a message's copy to the failover recipient."""
    return _stable_id(f"{distribution_id}{FAILOVER_SUFFIX}")


def timers_for(
    messages: Iterable[OutboundMessage],
    *,
    sent_at: datetime,
    kecamatan_slug: str | None,
    risk: str | None,
) -> tuple[Timer, ...]:
    """The escalation timers of every message among ``messages`` that has them."""
    return tuple(
        timer
        for message in messages
        for timer in escalation_timers(
            message, sent_at=sent_at, kecamatan_slug=kecamatan_slug, risk=risk
        )
    )


def escalation_timers(
    message: OutboundMessage,
    *,
    sent_at: datetime,
    kecamatan_slug: str | None,
    risk: str | None,
) -> tuple[Timer, ...]:
    """The at-risk and deadline-missed timers of a message to a recipient (none without
    a deadline)."""
    if message.destination is not Destination.DELIVER or message.deadline_at is None:
        return ()
    deadline_at = message.deadline_at
    at_risk_at = sent_at + (deadline_at - sent_at) * AT_RISK_FRACTION
    data = {
        "recipient": message.routing_key,
        "sequence": str(message.sequence),
        "deadline_at": deadline_at.isoformat(),
        "kecamatan": kecamatan_slug or "",
        "risk": risk or "",
    }
    # Only the at-risk timer may need the message again (the failover copy); every copy
    # kept is one more place the victim's data lies, and one more sealed write per message.
    copy = {"body": message.body.decode()}
    return tuple(
        Timer(
            timer_id=f"{message.message_id}:{kind}",
            kind=kind,
            case_id=message.case_id,
            subject=message.message_id,
            fire_at=fire_at,
            data=data | extra,
        )
        for kind, fire_at, extra in (
            (AT_RISK, at_risk_at, copy),
            (DEADLINE_MISSED, deadline_at, {}),
        )
    )


def on_at_risk(timer: Timer, *, now: datetime, failover: bool) -> TimerEffects:
    """The at-risk event and log row; with ``failover``, also the message to the failover
    recipient and its ``failover_started`` row."""
    recipient = timer.data["recipient"]
    outgoing = [_event(timer, "at_risk", failover=failover)]
    logged = [_log_row(timer, AttemptOutcome.AT_RISK, recipient, now)]
    if failover:
        copy = OutboundMessage(
            destination=Destination.DELIVER,
            routing_key=failover_recipient(recipient),
            message_id=failover_id(timer.subject),
            case_id=timer.case_id,
            sequence=int(timer.data["sequence"]),
            body=timer.data["body"].encode(),
            deadline_at=datetime.fromisoformat(timer.data["deadline_at"]),
        )
        outgoing.append(copy)
        logged.append(
            _log_row(
                timer,
                AttemptOutcome.FAILOVER_STARTED,
                copy.routing_key,
                now,
                reason=f"copy {copy.message_id}",
            )
        )
    return TimerEffects(outgoing=tuple(outgoing), delivery_log=tuple(logged))


def on_deadline_missed(timer: Timer, *, now: datetime) -> TimerEffects:
    return TimerEffects(
        outgoing=(_event(timer, "deadline_missed", failover=False),),
        delivery_log=(
            _log_row(timer, AttemptOutcome.DEADLINE_MISSED, timer.data["recipient"], now),
        ),
    )


def handlers(*, failover: bool, clock: Callable[[], datetime]) -> dict[str, Handler]:
    """The timer handlers of this module by kind, for the timer service's registry."""
    return {
        AT_RISK: lambda timer: on_at_risk(timer, now=clock(), failover=failover),
        DEADLINE_MISSED: lambda timer: on_deadline_missed(timer, now=clock()),
    }


def _log_row(
    timer: Timer,
    outcome: AttemptOutcome,
    recipient: str,
    now: datetime,
    *,
    reason: str | None = None,
) -> DeliveryAttempt:
    return DeliveryAttempt(
        distribution_id=timer.subject,
        case_id=timer.case_id,
        recipient=recipient,
        attempt=0,
        at=now,
        outcome=outcome,
        reason=reason or f"deadline {timer.data['deadline_at']}",
    )


def _event(timer: Timer, event: str, *, failover: bool) -> OutboundMessage:
    key = routing_key(
        "delivery", event, timer.data.get("kecamatan") or None, timer.data.get("risk") or None
    )
    body = {
        "event": f"delivery.{event}",
        "distribution_id": timer.subject,
        "case_id": timer.case_id,
        "recipient": timer.data["recipient"],
        "deadline_at": timer.data["deadline_at"],
        "fired_for": timer.fire_at.isoformat(),
        "failover": failover,
    }
    return OutboundMessage(
        destination=Destination.EVENTS,
        routing_key=key,
        message_id=_stable_id(timer.timer_id),
        case_id=timer.case_id,
        sequence=int(timer.data["sequence"]),
        body=json.dumps(body).encode(),
    )


def _stable_id(name: str) -> str:
    """The same message id every time a timer's messages are made (dedupe downstream)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:gateway:{name}"))
