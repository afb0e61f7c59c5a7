"""SOP 357: the case lifecycle, its eight time standards, and what each event decides.

Pure: times come in, decisions (new state, steps, timers, messages) go out.

Each step opens a *window* of its standard (divided by the SLA scale). A step's window
opens when the step before it is done or, when that step is late, the moment its own
window closed: the SOP's schedule does not wait for a late step. So every step of the
expected path is planned when a step is entered, and re-planned when a step is done
early; a case nobody touches falls behind each step in turn, once each.

Only steps whose window has opened have timers. The breach timer of the window that
closes next carries the steps planned after it, and firing it arms the next window's.
"""

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from contracts.case import Case
from contracts.problem import FieldError
from contracts.workflow import CaseEventRequest, CaseState, EventType, StaffRole, StepStatus
from gateway.errors import InvalidInput
from gateway.model import Timer

WARNING_FRACTION = 0.8
CLOCK_SKEW = timedelta(seconds=5)  # an ``at`` this far ahead of the gateway's clock is now
SLA_WARNING = "sla.warning"
SLA_BREACHED = "sla.breached"
SLA_KINDS = (SLA_WARNING, SLA_BREACHED)


@dataclass(frozen=True, slots=True)
class Standard:
    step: int
    state: CaseState
    activity: str
    actors: frozenset[StaffRole]
    duration: timedelta


_SATGAS = frozenset({StaffRole.SATGAS})
_HEAD = frozenset({StaffRole.HEAD})
_BOTH = _SATGAS | _HEAD

STANDARDS: Mapping[int, Standard] = {
    s.step: s
    for s in (
        Standard(1, CaseState.RECEIVED, "receive the complaint", _SATGAS, timedelta(seconds=20)),
        Standard(
            2, CaseState.REPORTED_TO_HEAD, "report to the head", _SATGAS, timedelta(seconds=30)
        ),
        Standard(
            3, CaseState.AWAITING_ASSIGNMENT, "assign Satgas PPA", _HEAD, timedelta(seconds=30)
        ),
        Standard(
            4,
            CaseState.TEAM_MOBILISING,
            "prepare and move the team",
            _SATGAS,
            timedelta(minutes=10),
        ),
        Standard(
            5, CaseState.FOLLOW_UP, "follow up (no other agency)", _SATGAS, timedelta(hours=4)
        ),
        Standard(
            6,
            CaseState.MULTI_AGENCY_COORDINATION,
            "coordinate with 112 and other agencies",
            _SATGAS,
            timedelta(minutes=5),
        ),
        Standard(
            7, CaseState.REPORTING_TO_HEAD, "report to the head", _SATGAS, timedelta(minutes=15)
        ),
        Standard(
            8,
            CaseState.HANDLING_REPORT_TO_112,
            "handling report to 112",
            _BOTH,
            timedelta(minutes=10),
        ),
    )
}
STEP_OF_STATE: Mapping[CaseState, int] = {s.state: s.step for s in STANDARDS.values()}
TERMINAL = frozenset({CaseState.CLOSED, CaseState.CANCELLED, CaseState.DUPLICATE})
SOP_TOTAL = timedelta(hours=4, minutes=41)
PATHS: Mapping[str, tuple[int, ...]] = {
    "step5": (1, 2, 3, 4, 5, 7),
    "step6": (1, 2, 3, 4, 6, 7, 8),
}

# Who may send each event (a role may only send its own steps).
EVENT_ROLES: Mapping[EventType, frozenset[StaffRole]] = {
    EventType.ACKNOWLEDGED: _SATGAS,
    EventType.REPORTED_TO_HEAD: _SATGAS,
    EventType.TEAM_ASSIGNED: _HEAD,
    EventType.TEAM_DEPARTED: _SATGAS,
    EventType.NEEDS_OTHER_AGENCIES: _SATGAS,
    EventType.FOLLOW_UP_DOCUMENTED: _SATGAS,
    EventType.STATUS_REPORT: _SATGAS,
    EventType.REPORTED_TO_HEAD_FINAL: _SATGAS,
    EventType.HANDLING_REPORT: _BOTH,
    EventType.CLOSED: _HEAD,
    EventType.CANCELLED: _HEAD,
    EventType.DUPLICATE_OF: _HEAD,
}

# The fields each event type must carry, as JSON pointers of the request body.
REQUIRED_FIELDS: Mapping[EventType, tuple[str, ...]] = {
    EventType.TEAM_ASSIGNED: ("team_id",),
    EventType.NEEDS_OTHER_AGENCIES: ("agencies",),
    EventType.FOLLOW_UP_DOCUMENTED: ("documentation",),
    EventType.STATUS_REPORT: ("report",),
    EventType.HANDLING_REPORT: ("report",),
    EventType.DUPLICATE_OF: ("duplicate_of",),
}

_ACTIVE = tuple(s for s in CaseState if s not in TERMINAL)
_BEFORE_COORDINATION = (
    CaseState.RECEIVED,
    CaseState.REPORTED_TO_HEAD,
    CaseState.AWAITING_ASSIGNMENT,
    CaseState.TEAM_MOBILISING,
    CaseState.FOLLOW_UP,
)
_AFTER_DEPARTURE = (
    CaseState.FOLLOW_UP,
    CaseState.MULTI_AGENCY_COORDINATION,
    CaseState.REPORTING_TO_HEAD,
    CaseState.HANDLING_REPORT_TO_112,
)

# (state, event) → the state it leads to. ``reported_to_head_final`` leads to SOP 8 or to
# CLOSED (see ``_target``); ``status_report`` after coordination is an update to 112.
TRANSITIONS: Mapping[tuple[CaseState, EventType], CaseState] = {
    (CaseState.RECEIVED, EventType.ACKNOWLEDGED): CaseState.REPORTED_TO_HEAD,
    (CaseState.RECEIVED, EventType.REPORTED_TO_HEAD): CaseState.AWAITING_ASSIGNMENT,
    (CaseState.REPORTED_TO_HEAD, EventType.REPORTED_TO_HEAD): CaseState.AWAITING_ASSIGNMENT,
    (CaseState.AWAITING_ASSIGNMENT, EventType.TEAM_ASSIGNED): CaseState.TEAM_MOBILISING,
    (CaseState.TEAM_MOBILISING, EventType.TEAM_DEPARTED): CaseState.FOLLOW_UP,
    (CaseState.FOLLOW_UP, EventType.FOLLOW_UP_DOCUMENTED): CaseState.REPORTING_TO_HEAD,
    (CaseState.MULTI_AGENCY_COORDINATION, EventType.STATUS_REPORT): CaseState.REPORTING_TO_HEAD,
    (CaseState.REPORTING_TO_HEAD, EventType.STATUS_REPORT): CaseState.REPORTING_TO_HEAD,
    (CaseState.HANDLING_REPORT_TO_112, EventType.STATUS_REPORT): CaseState.HANDLING_REPORT_TO_112,
    (
        CaseState.REPORTING_TO_HEAD,
        EventType.REPORTED_TO_HEAD_FINAL,
    ): CaseState.HANDLING_REPORT_TO_112,
    (CaseState.HANDLING_REPORT_TO_112, EventType.HANDLING_REPORT): CaseState.CLOSED,
    **{
        (s, EventType.NEEDS_OTHER_AGENCIES): CaseState.MULTI_AGENCY_COORDINATION
        for s in _BEFORE_COORDINATION
    },
    **{(s, EventType.CLOSED): CaseState.CLOSED for s in _AFTER_DEPARTURE},
    **{(s, EventType.CANCELLED): CaseState.CANCELLED for s in _ACTIVE},
    **{(s, EventType.DUPLICATE_OF): CaseState.DUPLICATE for s in _ACTIVE},
}


class IllegalTransition(InvalidInput):
    def __init__(self, state: CaseState, event: EventType, allowed: Sequence[EventType]) -> None:
        names = ", ".join(e.value for e in allowed) or "none"
        super().__init__(
            f"A case in state {state.value} cannot take {event.value}; allowed: {names}."
        )
        self.state = state
        self.event = event
        self.allowed = tuple(allowed)


class StepNotYours(InvalidInput):
    def __init__(self, role: StaffRole, event: EventType) -> None:
        allowed = ", ".join(sorted(r.value for r in EVENT_ROLES[event]))
        super().__init__(f"{event.value} is a step of {allowed}, not of {role.value}.")


class InvalidEvent(InvalidInput):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class StepRecord:
    step: int
    entered_at: datetime
    due_at: datetime
    done_at: datetime | None = None
    skipped_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.done_at is None and self.skipped_at is None


@dataclass(frozen=True, slots=True)
class Workflow:
    """Where a case stands in SOP 357; ``steps`` are those entered or planned, by step."""

    state: CaseState
    received_at: datetime
    scale: float
    coordination: bool
    uptd_ppa_coordinates: bool = True
    steps: tuple[StepRecord, ...] = ()
    status_reports: int = 0
    duplicate_of: str | None = None
    ended_at: datetime | None = None

    def step(self, number: int) -> StepRecord | None:
        return next((s for s in self.steps if s.step == number), None)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    type: EventType
    at: datetime
    recorded_at: datetime
    by_role: StaffRole
    by_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class C112Stream:
    """The messages this case sent to 112 so far, in order."""

    last_sequence: int = 0
    distribution_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CaseSnapshot:
    """A case as the store keeps it. ``workflow`` is None until its first event."""

    case: Case
    workflow: Workflow | None
    history: tuple[HistoryEntry, ...] = ()
    c112: C112Stream = C112Stream()
    sla_marks: Mapping[tuple[int, str], datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transition:
    """What one event does to a case, before messages are made of it."""

    workflow: Workflow
    case: Case | None  # the updated case, when the event changed it
    entry: HistoryEntry
    cancel_steps: tuple[int, ...]
    timer_steps: tuple[int, ...]
    routes_to_112: bool
    report: str | None  # "status" / "handling": a status-report/1 to 112


def window(step: int, scale: float) -> timedelta:
    return STANDARDS[step].duration / scale


def deadline(step: int, entered_at: datetime, scale: float) -> datetime:
    """When ``step`` entered at ``entered_at`` is due."""
    return entered_at + window(step, scale)


def warning_time(record: StepRecord) -> datetime:
    return record.entered_at + (record.due_at - record.entered_at) * WARNING_FRACTION


def step_status(record: StepRecord, now: datetime) -> StepStatus:
    if record.skipped_at is not None:
        return StepStatus.SKIPPED
    if record.done_at is not None:
        return StepStatus.MET if record.done_at <= record.due_at else StepStatus.BREACHED
    if now >= record.due_at:
        return StepStatus.BREACHED
    if now >= warning_time(record):
        return StepStatus.WARNING
    return StepStatus.PENDING


def step8_applies(workflow: Workflow) -> bool:
    return workflow.coordination and workflow.uptd_ppa_coordinates


def next_step(step: int, workflow: Workflow) -> int | None:
    """The step the SOP expects after ``step`` on this case's path."""
    if step <= 3:
        return step + 1
    if step in (4,):
        return 5
    if step in (5, 6):
        return 7
    if step == 7 and step8_applies(workflow):
        return 8
    return None


def plan(workflow: Workflow, step: int, entered_at: datetime) -> tuple[StepRecord, ...]:
    """``step`` entered at ``entered_at`` and every later step of the path, window after window."""
    records = []
    current: int | None = step
    opens = entered_at
    while current is not None:
        record = StepRecord(current, opens, deadline(current, opens, workflow.scale))
        records.append(record)
        opens = record.due_at
        current = next_step(current, workflow)
    return tuple(records)


def start(case: Case, scale: float) -> Workflow:
    """A case just accepted: SOP 1, or SOP 6 at once when other agencies are needed."""
    coordination = case.needs_other_agencies
    workflow = Workflow(
        state=CaseState.MULTI_AGENCY_COORDINATION if coordination else CaseState.RECEIVED,
        received_at=case.received_at,
        scale=scale,
        coordination=coordination,
    )
    return replace(workflow, steps=plan(workflow, 6 if coordination else 1, case.received_at))


def timer_subject(case_id: str, step: int) -> str:
    return f"{case_id}#sop{step}"


def sla_timers(
    case: Case,
    flow: Workflow,
    steps: Collection[int],
    *,
    now: datetime,
    kecamatan_slug: str,
    new_id: Callable[[], str],
    fired: Mapping[tuple[int, str], datetime] | None = None,
) -> tuple[Timer, ...]:
    """Warning and breach timers of the open ``steps`` whose window has opened by ``now``,
    leaving out what already fired for a step.

    A step planned further ahead gets its timers when its window opens: the breach of the
    step before it carries the steps still ahead (``data["then"]``), and firing it arms the
    next one (``next_window_timers``). A chain does not know what fired, so a step ahead
    that fired before (a case re-planned onto a step it was late on) is armed now, with
    every step before it; and a step whose breach fired carries no chain, so the step
    after it is armed now too.
    """
    fired = fired or {}
    ordered = sorted((r for r in flow.steps if r.open), key=_opening)
    marked = [i for i, r in enumerate(ordered) if any((r.step, k) in fired for k in SLA_KINDS)]
    last_marked = marked[-1] if marked else -1
    armed: list[StepRecord] = []
    for i, record in enumerate(ordered):
        carrier_fired = bool(armed) and (armed[-1].step, SLA_BREACHED) in fired
        if not (record.entered_at <= now or i <= last_marked or carrier_fired):
            break
        armed.append(record)
    then = [r.step for r in ordered[len(armed) :]]
    base = {"kecamatan": kecamatan_slug, "risk": case.risk.level.value}
    timers: list[Timer] = []
    for record in armed:
        if record.step in steps:
            chain = then if record is armed[-1] else []
            timers += _window_timers(case.case_id, record, base, chain, flow.scale, new_id)
    return tuple(t for t in timers if (int(t.data["step"]), t.kind) not in fired)


def next_window_timers(breach: Timer, new_id: Callable[[], str]) -> tuple[Timer, ...]:
    """The timers of the step whose window opens as ``breach`` fires (none at the last)."""
    then = [int(step) for step in breach.data.get("then", "").split(",") if step]
    if not then:
        return ()
    opens = datetime.fromisoformat(breach.data["due_at"])
    scale = float(breach.data["scale"])
    record = StepRecord(then[0], opens, deadline(then[0], opens, scale))
    base = {"kecamatan": breach.data["kecamatan"], "risk": breach.data["risk"]}
    return _window_timers(breach.case_id, record, base, then[1:], scale, new_id)


def _opening(record: StepRecord) -> datetime:
    return record.entered_at


def _window_timers(
    case_id: str,
    record: StepRecord,
    base: Mapping[str, str],
    then: Sequence[int],
    scale: float,
    new_id: Callable[[], str],
) -> tuple[Timer, Timer]:
    data = {
        **base,
        "step": str(record.step),
        "entered_at": record.entered_at.isoformat(),
        "due_at": record.due_at.isoformat(),
    }
    chain = {"then": ",".join(map(str, then)), "scale": repr(scale)} if then else {}
    subject = timer_subject(case_id, record.step)
    return (
        Timer(
            timer_id=new_id(),
            kind=SLA_WARNING,
            case_id=case_id,
            subject=subject,
            fire_at=warning_time(record),
            data=data,
        ),
        Timer(
            timer_id=new_id(),
            kind=SLA_BREACHED,
            case_id=case_id,
            subject=subject,
            fire_at=record.due_at,
            data={**data, **chain},
        ),
    )


def allowed_events(workflow: Workflow) -> list[EventType]:
    return [
        event
        for event in EventType
        if (workflow.state, event) in TRANSITIONS and _condition_holds(workflow, event)
    ]


def _condition_holds(workflow: Workflow, event: EventType) -> bool:
    if (
        event is EventType.STATUS_REPORT
        and workflow.state is not CaseState.MULTI_AGENCY_COORDINATION
    ):
        return workflow.coordination
    return True


def missing_fields(event: CaseEventRequest) -> list[FieldError]:
    dumped = event.model_dump()
    return [
        FieldError(pointer=f"/{name}", detail=f"required for {event.type.value}")
        for name in REQUIRED_FIELDS.get(event.type, ())
        if not dumped.get(name)
    ]


def transition(
    snapshot: CaseSnapshot,
    event: CaseEventRequest,
    *,
    role: StaffRole,
    now: datetime,
    scale: float,
) -> Transition:
    """Apply one event. Raises ``StepNotYours``, ``InvalidEvent`` or ``IllegalTransition``."""
    if role not in EVENT_ROLES[event.type]:
        raise StepNotYours(role, event.type)
    if event.by.role is not role:
        raise InvalidEvent([FieldError(pointer="/by/role", detail="is not the role of the token")])
    errors = missing_fields(event)
    at = event.at or now
    if now < at <= now + CLOCK_SKEW:
        at = now
    workflow = snapshot.workflow or start(snapshot.case, scale)
    last = max((h.at for h in snapshot.history), default=workflow.received_at)
    if at > now:
        errors.append(FieldError(pointer="/at", detail="is in the future"))
    elif at < last:
        errors.append(FieldError(pointer="/at", detail="is before the case's last event"))
    if event.type is EventType.DUPLICATE_OF and event.duplicate_of == snapshot.case.case_id:
        errors.append(FieldError(pointer="/duplicate_of", detail="a case cannot repeat itself"))
    if errors:
        raise InvalidEvent(errors)
    if (workflow.state, event.type) not in TRANSITIONS or not _condition_holds(
        workflow, event.type
    ):
        raise IllegalTransition(workflow.state, event.type, allowed_events(workflow))

    entry = HistoryEntry(
        type=event.type,
        at=at,
        recorded_at=now,
        by_role=role,
        by_id=event.by.id,
        details=event.model_dump(mode="json", exclude={"type", "at", "by"}, exclude_defaults=True),
    )
    kind = event.type
    case: Case | None = None
    routes = False
    report: str | None = None
    if kind in (EventType.CLOSED, EventType.CANCELLED, EventType.DUPLICATE_OF):
        new = _end(workflow, TRANSITIONS[(workflow.state, kind)], at, event.duplicate_of)
    elif kind is EventType.NEEDS_OTHER_AGENCIES:
        new = _enter_coordination(workflow, at, event.uptd_ppa_coordinates)
        case = snapshot.case.model_copy(
            update={
                "needs_other_agencies": True,
                "requested_agencies": list(event.agencies),
                "agency_request_reason": event.reason,
            }
        )
        routes = True
    elif (
        kind is EventType.STATUS_REPORT
        and workflow.state is not CaseState.MULTI_AGENCY_COORDINATION
    ):
        new = workflow
        report = "status"
    else:
        new = _complete(
            workflow,
            STEP_OF_STATE[workflow.state],
            at,
            done_also_before=kind is EventType.REPORTED_TO_HEAD,
        )
        if kind is EventType.STATUS_REPORT:
            report = "status"
        if kind is EventType.HANDLING_REPORT:
            report = "handling"
    if report is not None:
        new = replace(new, status_reports=new.status_reports + 1)
    changed = _changed_steps(workflow, new)
    return Transition(
        workflow=new,
        case=case,
        entry=entry,
        cancel_steps=changed,
        timer_steps=tuple(s for s in changed if (r := new.step(s)) is not None and r.open),
        routes_to_112=routes,
        report=report,
    )


def _changed_steps(old: Workflow, new: Workflow) -> tuple[int, ...]:
    before = {r.step: r for r in old.steps}
    after = {r.step: r for r in new.steps}
    return tuple(sorted(s for s in before.keys() | after.keys() if before.get(s) != after.get(s)))


def _complete(
    workflow: Workflow, current: int, at: datetime, *, done_also_before: bool
) -> Workflow:
    """Mark the current step done at ``at`` and move to the next; re-plan if it was early."""
    records = {r.step: r for r in workflow.steps}
    steps_done = [current, 2] if done_also_before and current == 1 else [current]
    for number in steps_done:
        record = records.get(number)
        if record is None or record.entered_at > at:
            record = StepRecord(number, at, deadline(number, at, workflow.scale))
        records[number] = replace(record, done_at=at)
        following = next_step(number, workflow)
        if following is not None and at < record.due_at:
            for planned in plan(workflow, following, at):
                records[planned.step] = planned
    last_done = steps_done[-1]
    following = next_step(last_done, workflow)
    state = STANDARDS[following].state if following is not None else CaseState.CLOSED
    return replace(
        workflow,
        state=state,
        steps=tuple(records[s] for s in sorted(records)),
        ended_at=at if state is CaseState.CLOSED else None,
    )


def _close_open(records: dict[int, StepRecord], at: datetime, *, keep: Iterable[int] = ()) -> None:
    """Skip the open steps whose window had opened by ``at``; forget the ones only planned."""
    kept = set(keep)
    for number, record in list(records.items()):
        if number in kept or not record.open:
            continue
        if record.entered_at > at:
            del records[number]
        else:
            records[number] = replace(record, skipped_at=at)


def _end(workflow: Workflow, state: CaseState, at: datetime, duplicate_of: str | None) -> Workflow:
    records = {r.step: r for r in workflow.steps}
    _close_open(records, at)
    return replace(
        workflow,
        state=state,
        steps=tuple(records[s] for s in sorted(records)),
        duplicate_of=duplicate_of,
        ended_at=at,
    )


def _enter_coordination(workflow: Workflow, at: datetime, uptd_ppa_coordinates: bool) -> Workflow:
    records = {r.step: r for r in workflow.steps}
    _close_open(records, at)
    coordinating = replace(workflow, coordination=True, uptd_ppa_coordinates=uptd_ppa_coordinates)
    for planned in plan(coordinating, 6, at):
        records[planned.step] = planned
    return replace(
        coordinating,
        state=CaseState.MULTI_AGENCY_COORDINATION,
        steps=tuple(records[s] for s in sorted(records)),
    )
