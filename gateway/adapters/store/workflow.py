"""The SOP workflow of each case: its place in the SOP, its history of events and its
snapshot (case, workflow, history, 112 stream, SLA marks) read and changed as one."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from contracts.workflow import CaseState, EventType, StaffRole
from gateway import audit, retention
from gateway.adapters.sealing import Sealer
from gateway.adapters.sql_db import Row, Session
from gateway.adapters.store.audit import append_to_audit
from gateway.adapters.store.base import SqlBase
from gateway.adapters.store.cases import case_columns, case_of
from gateway.adapters.store.outbox import insert_outbox
from gateway.adapters.store.sealed_columns import CASE_EVENTS
from gateway.adapters.store.sql import fetch, run, transaction
from gateway.adapters.store.time_text import from_text, opt_from_text, opt_text, to_text
from gateway.adapters.store.timers import cancel_subjects, insert_timers
from gateway.case_messages import CaseDecision
from gateway.model import Destination
from gateway.routing import C112_RECIPIENT
from gateway.workflow import SLA_KINDS, C112Stream, CaseSnapshot, HistoryEntry, StepRecord, Workflow


async def _write_workflow(conn: Session, case_id: str, flow: Workflow, now: datetime) -> None:
    await run(
        conn,
        "INSERT INTO case_workflow (case_id, state, ended_at, data, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET state = excluded.state, "
        "ended_at = excluded.ended_at, data = excluded.data, updated_at = excluded.updated_at",
        (
            case_id,
            flow.state.value,
            opt_text(flow.ended_at),
            _workflow_json(flow),
            to_text(now),
        ),
    )
    await run(conn, "UPDATE cases SET state = ? WHERE case_id = ?", (flow.state.value, case_id))


async def read_snapshot(conn: Session, case_id: str, sealer: Sealer) -> CaseSnapshot | None:
    rows = await fetch(
        conn,
        "SELECT c.data, c.sealed, w.data AS workflow FROM cases c "
        "LEFT JOIN case_workflow w ON w.case_id = c.case_id WHERE c.case_id = ?",
        (case_id,),
    )
    if not rows:
        return None
    case = case_of(case_id, rows[0]["data"], rows[0]["sealed"], sealer)
    raw_flow = rows[0]["workflow"]
    history = tuple(
        HistoryEntry(
            type=EventType(row["type"]),
            at=from_text(row["at"]),
            recorded_at=from_text(row["recorded_at"]),
            by_role=StaffRole(row["by_role"]),
            by_id=row["by_id"],
            details=_event_details(case_id, row, sealer),
        )
        for row in await fetch(
            conn,
            "SELECT type, at, recorded_at, by_role, by_id, details, sealed_details "
            "FROM case_events WHERE case_id = ? ORDER BY id",
            (case_id,),
        )
    )
    stream = await fetch(
        conn,
        "SELECT message_id, sequence FROM outbox WHERE case_id = ? AND destination = ? "
        "AND routing_key = ? ORDER BY sequence, id",
        (case_id, Destination.DELIVER.value, C112_RECIPIENT),
    )
    marks: dict[tuple[int, str], datetime] = {}
    for row in await fetch(
        conn,
        "SELECT kind, data, fired_at FROM timers WHERE case_id = ? AND fired_at IS NOT NULL "
        "AND kind IN (?, ?)",
        (case_id, *SLA_KINDS),
    ):
        step = int(json.loads(row["data"])["step"])
        fired_at = from_text(row["fired_at"])
        key = (step, row["kind"])
        marks[key] = min(marks.get(key, fired_at), fired_at)
    return CaseSnapshot(
        case=case,
        workflow=None if raw_flow is None else workflow_from_json(raw_flow),
        history=history,
        c112=C112Stream(
            last_sequence=max((int(r["sequence"]) for r in stream), default=0),
            distribution_ids=tuple(str(r["message_id"]) for r in stream),
        ),
        sla_marks=marks,
    )


def _event_details(case_id: str, row: Row, sealer: Sealer) -> dict[str, object]:
    details: dict[str, object] = json.loads(row["details"])
    if row["sealed_details"] is not None:
        aad = CASE_EVENTS.aad(case_id, row["recorded_at"], row["type"])
        details.update(json.loads(sealer.open(bytes(row["sealed_details"]), aad)))
    return details


def step_open(flow: Workflow, step: int) -> bool:
    """Whether the step's latest record is neither done nor skipped."""
    records = [r for r in flow.steps if r.step == step]
    return not records or records[-1].open


def _workflow_json(flow: Workflow) -> str:
    return json.dumps(
        {
            "state": flow.state.value,
            "received_at": to_text(flow.received_at),
            "scale": flow.scale,
            "coordination": flow.coordination,
            "uptd_ppa_coordinates": flow.uptd_ppa_coordinates,
            "status_reports": flow.status_reports,
            "duplicate_of": flow.duplicate_of,
            "ended_at": opt_text(flow.ended_at),
            "steps": [
                {
                    "step": r.step,
                    "entered_at": to_text(r.entered_at),
                    "due_at": to_text(r.due_at),
                    "done_at": opt_text(r.done_at),
                    "skipped_at": opt_text(r.skipped_at),
                }
                for r in flow.steps
            ],
        }
    )


def workflow_from_json(text: str) -> Workflow:
    data = json.loads(text)
    return Workflow(
        state=CaseState(data["state"]),
        received_at=from_text(data["received_at"]),
        scale=float(data["scale"]),
        coordination=bool(data["coordination"]),
        uptd_ppa_coordinates=bool(data["uptd_ppa_coordinates"]),
        status_reports=int(data["status_reports"]),
        duplicate_of=data["duplicate_of"],
        ended_at=opt_from_text(data["ended_at"]),
        steps=tuple(
            StepRecord(
                step=int(r["step"]),
                entered_at=from_text(r["entered_at"]),
                due_at=from_text(r["due_at"]),
                done_at=opt_from_text(r["done_at"]),
                skipped_at=opt_from_text(r["skipped_at"]),
            )
            for r in data["steps"]
        ),
    )


class WorkflowSql(SqlBase):
    async def case_snapshot(self, case_id: str) -> CaseSnapshot | None:
        async with self._session() as conn:
            return await read_snapshot(conn, case_id, self._sealer)

    async def apply_case_event(
        self,
        case_id: str,
        decide: Callable[[CaseSnapshot], CaseDecision],
        *,
        via: str | None = None,
    ) -> CaseDecision | None:
        async with self._session() as conn, transaction(conn):
            snapshot = await read_snapshot(conn, case_id, self._sealer)
            if snapshot is None:
                return None
            decision = decide(snapshot)
            now = decision.entry.recorded_at
            await _write_workflow(conn, case_id, decision.workflow, now)
            if decision.case is not None:
                await run(
                    conn,
                    "UPDATE cases SET data = ?, sealed = ?, needs_other_agencies = ? "
                    "WHERE case_id = ?",
                    (
                        *case_columns(decision.case, self._sealer),
                        int(decision.case.needs_other_agencies),
                        case_id,
                    ),
                )
            entry = decision.entry
            recorded_at = to_text(entry.recorded_at)
            public, personal = retention.split_event_details(entry.details)
            sealed = (
                self._sealer.seal(
                    json.dumps(personal).encode(),
                    CASE_EVENTS.aad(case_id, recorded_at, entry.type.value),
                )
                if personal
                else None
            )
            await run(
                conn,
                "INSERT INTO case_events (case_id, type, at, recorded_at, by_role, by_id, "
                "details, sealed_details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case_id,
                    entry.type.value,
                    to_text(entry.at),
                    recorded_at,
                    entry.by_role.value,
                    entry.by_id,
                    json.dumps(public),
                    sealed,
                ),
            )
            await append_to_audit(
                conn,
                audit.AuditEntry(
                    at=entry.recorded_at,
                    actor=audit.Actor(entry.by_role.value, entry.by_id),
                    action=audit.CASE_EVENT,
                    case_id=case_id,
                    details={
                        "type": entry.type.value,
                        "state": decision.workflow.state.value,
                        **({} if via is None else {"via": via}),
                    },
                ),
            )
            await cancel_subjects(conn, decision.cancel_subjects, now)
            await insert_timers(conn, decision.timers, self._sealer)
            await insert_outbox(conn, decision.outgoing, now, self._sealer)
        return decision

    async def case_snapshots(
        self,
        *,
        received_between: tuple[datetime, datetime] | None = None,
        ended_between: tuple[datetime, datetime] | None = None,
    ) -> list[CaseSnapshot]:
        """Cases received (or ended) in ``[from, to)``, oldest first."""
        if received_between is not None:
            sql = "SELECT c.case_id FROM cases c WHERE c.received_at >= ? AND c.received_at < ? "
            bounds = received_between
        elif ended_between is not None:
            sql = (
                "SELECT c.case_id FROM cases c JOIN case_workflow w ON w.case_id = c.case_id "
                "WHERE w.ended_at >= ? AND w.ended_at < ? "
            )
            bounds = ended_between
        else:
            raise ValueError("give received_between or ended_between")
        async with self._session() as conn:
            rows = await fetch(
                conn,
                sql + "ORDER BY c.received_at, c.case_id",
                (to_text(bounds[0]), to_text(bounds[1])),
            )
            snapshots = [await read_snapshot(conn, row["case_id"], self._sealer) for row in rows]
        return [s for s in snapshots if s is not None]
