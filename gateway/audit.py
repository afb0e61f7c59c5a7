"""The audit log as a hash chain: each row's hash covers the row and the previous hash.

Rows carry S0 only: who (role and id), what (an action word), which case, when, and
coded details. ``verify`` walks the rows in ``seq`` order against the head record (the
last ``seq`` and hash, kept beside the rows) and names the first row that does not hold:
an edited row breaks its own hash, a removed row leaves a gap, a removed last row no
longer reaches the head.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

GENESIS = "0" * 64
"""The ``prev_hash`` of the first row."""

Detail: TypeAlias = str | int | float | bool | None

# Actions (S0 words). Reads of personal data, then every state change.
CASE_READ = "case.read"
CASE_RECEIVED = "case.received"
CASE_EVENT = "case.event"
CASE_PURGED = "case.purged"
QUARANTINE_PURGED = "quarantine.purged"
DELIVERY_REPLAYED = "delivery.replayed"
SUBSCRIPTION_CREATED = "subscription.created"
SUBSCRIPTION_STATUS = "subscription.status"
SUBSCRIPTION_SECRET_ROTATED = "subscription.secret_rotated"  # noqa: S105 - an action name
SUBSCRIPTION_REMOVED = "subscription.removed"
STORE_RESEALED = "store.resealed"

SYSTEM_ROLE = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    role: str
    id: str | None = None


SYSTEM = Actor(SYSTEM_ROLE)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened, before it has a place in the chain."""

    at: datetime
    actor: Actor
    action: str
    case_id: str | None = None
    details: Mapping[str, Detail] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    at: str
    actor_role: str
    actor_id: str | None
    action: str
    case_id: str | None
    details: str
    """Canonical JSON of the entry's details, as stored."""
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditHead:
    last_seq: int
    last_hash: str


@dataclass(frozen=True, slots=True)
class Verdict:
    count: int
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def at_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("audit times are aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(
    *,
    seq: int,
    at: str,
    actor_role: str,
    actor_id: str | None,
    action: str,
    case_id: str | None,
    details: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical JSON of the row's fields, ``prev_hash`` included."""
    body = canonical(
        {
            "seq": seq,
            "at": at,
            "actor_role": actor_role,
            "actor_id": actor_id,
            "action": action,
            "case_id": case_id,
            "details": details,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


def chained(entry: AuditEntry, *, seq: int, prev_hash: str) -> AuditRow:
    """The entry as row ``seq``, after the row whose hash is ``prev_hash``."""
    at = at_text(entry.at)
    details = canonical(dict(entry.details))
    digest = row_hash(
        seq=seq,
        at=at,
        actor_role=entry.actor.role,
        actor_id=entry.actor.id,
        action=entry.action,
        case_id=entry.case_id,
        details=details,
        prev_hash=prev_hash,
    )
    return AuditRow(
        seq=seq,
        at=at,
        actor_role=entry.actor.role,
        actor_id=entry.actor.id,
        action=entry.action,
        case_id=entry.case_id,
        details=details,
        prev_hash=prev_hash,
        hash=digest,
    )


def verify(rows: Iterable[AuditRow], head: AuditHead | None) -> Verdict:
    """Check the chain, rows in ``seq`` order; the first row that does not hold is named."""
    expected_seq, prev = 1, GENESIS
    count = 0
    for row in rows:
        if row.seq != expected_seq:
            return Verdict(count, expected_seq, f"row {expected_seq} is missing")
        if row.prev_hash != prev:
            return Verdict(count, row.seq, f"row {row.seq} does not follow row {row.seq - 1}")
        again = row_hash(
            seq=row.seq,
            at=row.at,
            actor_role=row.actor_role,
            actor_id=row.actor_id,
            action=row.action,
            case_id=row.case_id,
            details=row.details,
            prev_hash=row.prev_hash,
        )
        if again != row.hash:
            return Verdict(count, row.seq, f"row {row.seq} was changed")
        count += 1
        expected_seq, prev = row.seq + 1, row.hash
    last_seq = expected_seq - 1
    if head is None:
        if count:
            return Verdict(count, 1, "the head record is missing")
        return Verdict(0)
    if head.last_seq > last_seq:
        return Verdict(count, last_seq + 1, f"rows {last_seq + 1}..{head.last_seq} are missing")
    if head.last_seq < last_seq:
        return Verdict(count, head.last_seq + 1, "rows after the head record's last row")
    if head.last_hash != prev:
        return Verdict(count, last_seq, "the head record does not match the last row")
    return Verdict(count)
