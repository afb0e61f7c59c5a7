"""Deadline escalation of one outbound message: the timers it sets and what they send.

Pure. A message with a ``deadline_at`` gets two timers, watching its distribution id
(delivery cancels them): at 80 % of the time to the deadline ``delivery.at_risk``,
at 100 % ``delivery.deadline_missed``. Each publishes an S0 event on the topic
exchange; at risk, with failover on, a copy of the message also goes to the failover
recipient (its own queue, its own ``webhook-id``; the envelope inside is unchanged).
"""

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from gateway.model import Destination, OutboundMessage, Timer
from gateway.routing import routing_key

AT_RISK = "delivery.at_risk"
DEADLINE_MISSED = "delivery.deadline_missed"
AT_RISK_FRACTION = 0.8
FAILOVER_SUFFIX = "_failover"

Handler = Callable[[Timer], Sequence[OutboundMessage]]


def failover_recipient(recipient: str) -> str:
    return recipient + FAILOVER_SUFFIX


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
        "body": message.body.decode(),
    }
    return tuple(
        Timer(
            timer_id=f"{message.message_id}:{kind}",
            kind=kind,
            case_id=message.case_id,
            subject=message.message_id,
            fire_at=fire_at,
            data=data,
        )
        for kind, fire_at in ((AT_RISK, at_risk_at), (DEADLINE_MISSED, deadline_at))
    )


def on_at_risk(timer: Timer, *, failover: bool) -> tuple[OutboundMessage, ...]:
    """The at-risk event; with ``failover``, also the message to the failover recipient."""
    sent = [_event(timer, "at_risk", failover=failover)]
    if failover:
        sent.append(
            OutboundMessage(
                destination=Destination.DELIVER,
                routing_key=failover_recipient(timer.data["recipient"]),
                message_id=_stable_id(f"{timer.subject}{FAILOVER_SUFFIX}"),
                case_id=timer.case_id,
                sequence=int(timer.data["sequence"]),
                body=timer.data["body"].encode(),
                deadline_at=datetime.fromisoformat(timer.data["deadline_at"]),
            )
        )
    return tuple(sent)


def on_deadline_missed(timer: Timer) -> tuple[OutboundMessage, ...]:
    return (_event(timer, "deadline_missed", failover=False),)


def handlers(*, failover: bool) -> dict[str, Handler]:
    """The timer handlers of this module by kind, for the timer service's registry."""
    return {
        AT_RISK: lambda timer: on_at_risk(timer, failover=failover),
        DEADLINE_MISSED: on_deadline_missed,
    }


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
