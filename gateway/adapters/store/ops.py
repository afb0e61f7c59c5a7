"""The ops console's questions: what each recipient is waiting for, what is at risk of
missing its deadline, how far behind the outbox is. Only S0/S1 columns are read."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from contracts.ops import AtRiskKind
from gateway import escalation
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.sql import fetch
from gateway.adapters.store.time_text import from_text, opt_from_text, to_text
from gateway.adapters.store.workflow import step_open, workflow_from_json
from gateway.model import AtRisk, AttemptOutcome, RecipientActivity
from gateway.workflow import SLA_BREACHED, SLA_WARNING


class OpsSql(SqlBase):
    async def recipient_activity(self, since: datetime) -> list[RecipientActivity]:
        """Per recipient: messages not settled yet and the oldest one's waiting start,
        and its delivered and failed attempts from ``since`` on.

        A message waits from when it was made (its outbox row) or last replayed. Partner
        webhook messages have no outbox row: they wait from their first attempt, as far
        back as ``since``.
        """
        failed = (AttemptOutcome.RETRY, AttemptOutcome.PARKED, AttemptOutcome.GONE)
        async with self._session() as conn:
            # The destination is written out: a planner takes the partial index
            # outbox_waiting only for the literal of its predicate. Each row the index
            # offers is checked against delivery_settled, which a gateway from before
            # 0010, still running beside this one during an upgrade, settles alone.
            from_outbox = await fetch(
                conn,
                "SELECT o.routing_key AS recipient, COUNT(*) AS waiting, MIN(COALESCE(("
                "SELECT MAX(p.replayed_at) FROM parked p WHERE p.distribution_id = o.message_id "
                "AND p.recipient = o.routing_key), o.created_at)) AS since FROM outbox o "
                "WHERE o.destination = 'deliver' AND o.settled_at IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM delivery_settled s "
                "WHERE s.distribution_id = o.message_id AND s.recipient = o.routing_key) "
                "GROUP BY o.routing_key",
            )
            from_log = await fetch(
                conn,
                "SELECT recipient, COUNT(*) AS waiting, MIN(since) AS since FROM ("
                "SELECT l.recipient AS recipient, l.distribution_id AS distribution_id, "
                "MIN(l.at) AS since FROM delivery_log l WHERE l.at >= ? AND l.attempt > 0 "
                "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = l.distribution_id) "
                "AND NOT EXISTS (SELECT 1 FROM delivery_settled s "
                "WHERE s.distribution_id = l.distribution_id AND s.recipient = l.recipient) "
                "GROUP BY l.recipient, l.distribution_id) AS unsettled GROUP BY recipient",
                (to_text(since),),
            )
            counts = await fetch(
                conn,
                "SELECT recipient, outcome, COUNT(*) AS attempts FROM delivery_log "
                "WHERE at >= ? AND outcome IN (?, ?, ?, ?) GROUP BY recipient, outcome",
                (to_text(since), AttemptOutcome.DELIVERED.value, *(o.value for o in failed)),
            )
        found: dict[str, RecipientActivity] = {}

        def of(recipient: str) -> RecipientActivity:
            return found.setdefault(recipient, RecipientActivity(recipient=recipient))

        for row in (*from_outbox, *from_log):
            known = of(row["recipient"])
            started = from_text(row["since"])
            oldest = known.oldest_waiting_since
            found[known.recipient] = replace(
                known,
                waiting=known.waiting + int(row["waiting"]),
                oldest_waiting_since=started if oldest is None else min(oldest, started),
            )
        for row in counts:
            known = of(row["recipient"])
            attempts = int(row["attempts"])
            if row["outcome"] == AttemptOutcome.DELIVERED.value:
                found[known.recipient] = replace(known, delivered=known.delivered + attempts)
            else:
                found[known.recipient] = replace(known, failed=known.failed + attempts)
        return sorted(found.values(), key=lambda a: a.recipient)

    async def at_risk(self, now: datetime, *, missed_since: datetime) -> list[AtRisk]:
        """Open SOP steps and undelivered messages past their warning point at ``now``,
        the most urgent first; those whose deadline passed before ``missed_since`` are
        left out. Only S0/S1 columns are read: never a timer's message body."""
        async with self._session() as conn:
            steps = await fetch(
                conn,
                "SELECT b.case_id, b.fire_at AS deadline_at, b.data, w.fire_at AS warning_at, "
                "c.kecamatan_code, f.data AS workflow FROM timers b "
                "JOIN timers w ON w.subject = b.subject AND w.kind = ? AND w.cancelled_at IS NULL "
                "JOIN cases c ON c.case_id = b.case_id "
                "LEFT JOIN case_workflow f ON f.case_id = b.case_id "
                "WHERE b.kind = ? AND b.cancelled_at IS NULL AND b.fire_at >= ? "
                "AND w.fire_at <= ?",
                (SLA_WARNING, SLA_BREACHED, to_text(missed_since), to_text(now)),
            )
            deliveries = await fetch(
                conn,
                "SELECT m.case_id, m.subject, m.fire_at AS deadline_at, r.fire_at AS warning_at, "
                "o.routing_key, o.created_at, c.kecamatan_code FROM timers m "
                "JOIN timers r ON r.subject = m.subject AND r.kind = ? AND r.cancelled_at IS NULL "
                "JOIN outbox o ON o.message_id = m.subject "
                "JOIN cases c ON c.case_id = m.case_id "
                "WHERE m.kind = ? AND m.cancelled_at IS NULL AND m.fire_at >= ? "
                "AND r.fire_at <= ? AND NOT EXISTS (SELECT 1 FROM delivery_settled s "
                "WHERE s.distribution_id = m.subject AND s.recipient = o.routing_key "
                "AND s.outcome = ?)",
                (
                    escalation.AT_RISK,
                    escalation.DEADLINE_MISSED,
                    to_text(missed_since),
                    to_text(now),
                    AttemptOutcome.DELIVERED.value,
                ),
            )
        found: list[AtRisk] = []
        for row in steps:
            data = json.loads(row["data"])
            step = int(data["step"])
            if row["workflow"] is not None and not step_open(
                workflow_from_json(row["workflow"]), step
            ):
                continue
            found.append(
                AtRisk(
                    kind=AtRiskKind.SLA_STEP,
                    case_id=row["case_id"],
                    kecamatan_code=row["kecamatan_code"],
                    started_at=from_text(data["entered_at"]),
                    warning_at=from_text(row["warning_at"]),
                    deadline_at=from_text(row["deadline_at"]),
                    step=step,
                )
            )
        found.extend(
            AtRisk(
                kind=AtRiskKind.DELIVERY,
                case_id=row["case_id"],
                kecamatan_code=row["kecamatan_code"],
                started_at=from_text(row["created_at"]),
                warning_at=from_text(row["warning_at"]),
                deadline_at=from_text(row["deadline_at"]),
                recipient=row["routing_key"],
                distribution_id=row["subject"],
            )
            for row in deliveries
        )
        return sorted(found, key=lambda item: (item.deadline_at, item.case_id))

    async def oldest_unpublished(self) -> datetime | None:
        """When the oldest outbox row not yet published was made (``None``: all are)."""
        async with self._session() as conn:
            rows = await fetch(
                conn, "SELECT MIN(created_at) AS oldest FROM outbox WHERE published_at IS NULL"
            )
        return opt_from_text(rows[0]["oldest"]) if rows else None
