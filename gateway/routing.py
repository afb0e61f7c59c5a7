"""Routing rules: what an accepted case makes the gateway send, and where to.

Event routing keys are ``<entity>.<event>.<kecamatan>.<risk>`` on the topic exchange,
``-`` standing for a missing word (``case.created.pinang.high``,
``delivery.parked.c112.-``).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from contracts.case import CASE_SCHEMA, Case
from contracts.envelope import DistributionKind, DistributionStatus, Envelope, RecipientRole
from gateway.model import Destination, OutboundMessage
from gateway.redaction import redact_case

C112_DEADLINE = timedelta(minutes=5)  # SOP step 6
C112_RECIPIENT = "c112"
MISSING_WORD = "-"

_WORD = re.compile(r"[a-z0-9_-]+")
# By alias: the pydantic mypy plugin cannot see the alias of ``Envelope.schema_``.
_CASE_SCHEMA: dict[str, Any] = {"schema": CASE_SCHEMA}


def c112_deadline(scale: float = 1.0) -> timedelta:
    """The time 112 has to get a message: SOP 6's 5 minutes, divided by the SLA scale
    like every SOP time standard."""
    return C112_DEADLINE / scale


def routing_key(entity: str, event: str, kecamatan_slug: str | None, risk: str | None) -> str:
    """Raises ``ValueError`` for a word a topic cannot carry (dots, ``*``, ``#``, upper case)."""
    words = (
        entity,
        event,
        MISSING_WORD if kecamatan_slug is None else kecamatan_slug,
        MISSING_WORD if risk is None else risk,
    )
    for word in words:
        if not _WORD.fullmatch(word):
            raise ValueError(f"{word!r} is not a routing key word")
    return ".".join(words)


@dataclass(frozen=True, slots=True)
class IntakePlan:
    """The messages a new case sends, in the order they are written to the outbox."""

    outgoing: tuple[OutboundMessage, ...]
    c112_deadline_at: datetime | None


def plan_intake(
    case: Case,
    *,
    kecamatan_slug: str,
    now: datetime,
    new_id: Callable[[], str],
    sender_id: str,
    status: DistributionStatus,
    scale: float = 1.0,
) -> IntakePlan:
    """Announce the case on the events exchange; hand it to 112 when other agencies are needed."""
    level = case.risk.level.value
    key = routing_key("case", "created", kecamatan_slug, level)
    outgoing = [
        outbound(
            Destination.EVENTS,
            key,
            Envelope(
                distribution_id=new_id(),
                sender_id=sender_id,
                sent_at=now,
                status=status,
                kind=DistributionKind.REPORT,
                **_CASE_SCHEMA,
                case_id=case.case_id,
                sequence=1,
                routing_key=key,
                redaction_profile=RecipientRole.DASHBOARD,
                content=redact_case(case, RecipientRole.DASHBOARD),
            ),
        )
    ]
    deadline = now + c112_deadline(scale) if case.needs_other_agencies else None
    if deadline is not None:
        outgoing.append(
            outbound(
                Destination.DELIVER,
                C112_RECIPIENT,
                Envelope(
                    distribution_id=new_id(),
                    sender_id=sender_id,
                    sent_at=now,
                    deadline_at=deadline,
                    status=status,
                    kind=DistributionKind.REPORT,
                    **_CASE_SCHEMA,
                    case_id=case.case_id,
                    sequence=1,
                    recipient_roles=[RecipientRole.C112],
                    keywords=["kdrt", "needs-other-agency", f"risk:{level}"],
                    redaction_profile=RecipientRole.C112,
                    content=redact_case(case, RecipientRole.C112),
                ),
            )
        )
    return IntakePlan(outgoing=tuple(outgoing), c112_deadline_at=deadline)


def outbound(destination: Destination, key: str, envelope: Envelope) -> OutboundMessage:
    """The outbox message of ``envelope``, its body exactly as it will be signed."""
    return OutboundMessage(
        destination=destination,
        routing_key=key,
        message_id=envelope.distribution_id,
        case_id=envelope.case_id,
        sequence=envelope.sequence,
        body=envelope.model_dump_json(by_alias=True, exclude_none=True).encode(),
        deadline_at=envelope.deadline_at,
    )
