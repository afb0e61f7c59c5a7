"""SOP 357 as domain code: the eight standards, every transition, windows and decisions."""

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import valid_01_case

from contracts.case import Case
from contracts.envelope import DistributionStatus
from contracts.workflow import CaseEventRequest, CaseState, EventType, StaffRole, StepStatus
from gateway import escalation, workflow
from gateway.case_messages import CaseDecision, Sending, decide, sla_event_messages
from gateway.model import Destination, Timer
from gateway.workflow import (
    STANDARDS,
    C112Stream,
    CaseSnapshot,
    IllegalTransition,
    InvalidEvent,
    StepNotYours,
    StepRecord,
    Transition,
)

T0 = datetime(2026, 11, 30, 6, 45, 10, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)


def lone_case() -> Case:
    """A case that needs no other agency: it starts at SOP 1."""
    return valid_01_case(received_at=T0, needs_other_agencies=False, requested_agencies=[])


def agency_case() -> Case:
    return valid_01_case(received_at=T0)


def counter(prefix: str = "id") -> Callable[[], str]:
    numbers: Iterator[int] = iter(range(1, 10_000))
    return lambda: f"{prefix}-{next(numbers)}"


# ---- the eight standards ----


@pytest.mark.parametrize(
    ("step", "state", "standard", "actor"),
    [
        (1, CaseState.RECEIVED, 20 * S, {StaffRole.SATGAS}),
        (2, CaseState.REPORTED_TO_HEAD, 30 * S, {StaffRole.SATGAS}),
        (3, CaseState.AWAITING_ASSIGNMENT, 30 * S, {StaffRole.HEAD}),
        (4, CaseState.TEAM_MOBILISING, 10 * M, {StaffRole.SATGAS}),
        (5, CaseState.FOLLOW_UP, 4 * H, {StaffRole.SATGAS}),
        (6, CaseState.MULTI_AGENCY_COORDINATION, 5 * M, {StaffRole.SATGAS}),
        (7, CaseState.REPORTING_TO_HEAD, 15 * M, {StaffRole.SATGAS}),
        (8, CaseState.HANDLING_REPORT_TO_112, 10 * M, {StaffRole.SATGAS, StaffRole.HEAD}),
    ],
)
def test_each_sop_step_has_its_standard(
    step: int, state: CaseState, standard: timedelta, actor: set[StaffRole]
) -> None:
    assert STANDARDS[step].state is state
    assert STANDARDS[step].duration == standard
    assert STANDARDS[step].actors == actor
    assert workflow.deadline(step, T0, 1) == T0 + standard
    assert workflow.deadline(step, T0, 10) == T0 + standard / 10
    record = StepRecord(step, T0, workflow.deadline(step, T0, 1))
    assert workflow.warning_time(record) == T0 + standard * 0.8


def test_the_paths_add_up_to_the_sop_totals() -> None:
    def total(steps: tuple[int, ...]) -> timedelta:
        return sum((STANDARDS[s].duration for s in steps), timedelta())

    assert total(workflow.PATHS["step5"]) == 4 * H + 26 * M + 20 * S
    assert total(workflow.PATHS["step6"]) == 41 * M + 20 * S
    assert total(tuple(STANDARDS)) == 4 * H + 41 * M + 20 * S
    assert workflow.SOP_TOTAL == 4 * H + 41 * M


@pytest.mark.parametrize(
    ("offset", "done", "skipped", "status"),
    [
        (0 * S, None, None, StepStatus.PENDING),
        (23 * S, None, None, StepStatus.PENDING),
        (24 * S, None, None, StepStatus.WARNING),
        (29 * S, None, None, StepStatus.WARNING),
        (30 * S, None, None, StepStatus.BREACHED),
        (99 * S, 30 * S, None, StepStatus.MET),
        (99 * S, 31 * S, None, StepStatus.BREACHED),
        (99 * S, None, 40 * S, StepStatus.SKIPPED),
    ],
)
def test_step_status(
    offset: timedelta, done: timedelta | None, skipped: timedelta | None, status: StepStatus
) -> None:
    record = StepRecord(
        2,
        T0,
        T0 + 30 * S,
        done_at=None if done is None else T0 + done,
        skipped_at=None if skipped is None else T0 + skipped,
    )
    assert workflow.step_status(record, T0 + offset) is status


# ---- transitions ----

REQUIRED: dict[EventType, dict[str, Any]] = {
    EventType.TEAM_ASSIGNED: {"team_id": "tim-2"},
    EventType.NEEDS_OTHER_AGENCIES: {"agencies": ["police"], "reason": "perpetrator armed"},
    EventType.FOLLOW_UP_DOCUMENTED: {"documentation": ["doc-17"]},
    EventType.STATUS_REPORT: {"report": {"victim_status": "safe", "services": ["penjangkauan"]}},
    EventType.HANDLING_REPORT: {"report": {"victim_status": "safe", "services": ["kesehatan"]}},
    EventType.DUPLICATE_OF: {"duplicate_of": "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1B"},
}


def role_for(event: EventType) -> StaffRole:
    head = {EventType.TEAM_ASSIGNED, EventType.CLOSED, EventType.CANCELLED, EventType.DUPLICATE_OF}
    return StaffRole.HEAD if event in head else StaffRole.SATGAS


def request(event: EventType, at: datetime | None = None, **extra: Any) -> CaseEventRequest:
    body: dict[str, Any] = {"type": event.value, "by": {"role": role_for(event).value}}
    body.update(REQUIRED.get(event, {}))
    body.update(extra)
    if at is not None:
        body["at"] = at.isoformat()
    return CaseEventRequest.model_validate(body)


def apply(
    snapshot: CaseSnapshot,
    event: EventType,
    at: datetime,
    scale: float = 1,
    *,
    now: datetime | None = None,
    **extra: Any,
) -> tuple[CaseSnapshot, Transition]:
    """``event`` happened ``at``; told ``now`` (by default then)."""
    moved = workflow.transition(
        snapshot, request(event, at, **extra), role=role_for(event), now=now or at, scale=scale
    )
    after = CaseSnapshot(
        case=moved.case or snapshot.case,
        workflow=moved.workflow,
        history=(*snapshot.history, moved.entry),
    )
    return after, moved


E = EventType
ROUTES: dict[str, tuple[bool, tuple[EventType, ...]]] = {
    "received": (False, ()),
    "reported_to_head": (False, (E.ACKNOWLEDGED,)),
    "awaiting_assignment": (False, (E.REPORTED_TO_HEAD,)),
    "team_mobilising": (False, (E.REPORTED_TO_HEAD, E.TEAM_ASSIGNED)),
    "follow_up": (False, (E.REPORTED_TO_HEAD, E.TEAM_ASSIGNED, E.TEAM_DEPARTED)),
    "reporting_to_head (step 5 path)": (
        False,
        (E.REPORTED_TO_HEAD, E.TEAM_ASSIGNED, E.TEAM_DEPARTED, E.FOLLOW_UP_DOCUMENTED),
    ),
    "multi_agency_coordination": (True, ()),
    "reporting_to_head (step 6 path)": (True, (E.STATUS_REPORT,)),
    "handling_report_to_112": (True, (E.STATUS_REPORT, E.REPORTED_TO_HEAD_FINAL)),
    "closed": (True, (E.STATUS_REPORT, E.REPORTED_TO_HEAD_FINAL, E.HANDLING_REPORT)),
    "cancelled": (False, (E.CANCELLED,)),
    "duplicate": (False, (E.DUPLICATE_OF,)),
}

_ENDINGS = {E.CANCELLED: CaseState.CANCELLED, E.DUPLICATE_OF: CaseState.DUPLICATE}
_ACTIVE_ENDINGS = {**_ENDINGS}
_AFTER_DEPARTURE_ENDINGS = {**_ENDINGS, E.CLOSED: CaseState.CLOSED}

# Written out by hand from ARCHITECTURE.md §5 and the issue, not from the code's table.
LEGAL: dict[str, dict[EventType, CaseState]] = {
    "received": {
        E.ACKNOWLEDGED: CaseState.REPORTED_TO_HEAD,
        E.REPORTED_TO_HEAD: CaseState.AWAITING_ASSIGNMENT,
        E.NEEDS_OTHER_AGENCIES: CaseState.MULTI_AGENCY_COORDINATION,
        **_ACTIVE_ENDINGS,
    },
    "reported_to_head": {
        E.REPORTED_TO_HEAD: CaseState.AWAITING_ASSIGNMENT,
        E.NEEDS_OTHER_AGENCIES: CaseState.MULTI_AGENCY_COORDINATION,
        **_ACTIVE_ENDINGS,
    },
    "awaiting_assignment": {
        E.TEAM_ASSIGNED: CaseState.TEAM_MOBILISING,
        E.NEEDS_OTHER_AGENCIES: CaseState.MULTI_AGENCY_COORDINATION,
        **_ACTIVE_ENDINGS,
    },
    "team_mobilising": {
        E.TEAM_DEPARTED: CaseState.FOLLOW_UP,
        E.NEEDS_OTHER_AGENCIES: CaseState.MULTI_AGENCY_COORDINATION,
        **_ACTIVE_ENDINGS,
    },
    "follow_up": {
        E.FOLLOW_UP_DOCUMENTED: CaseState.REPORTING_TO_HEAD,
        E.NEEDS_OTHER_AGENCIES: CaseState.MULTI_AGENCY_COORDINATION,
        **_AFTER_DEPARTURE_ENDINGS,
    },
    "reporting_to_head (step 5 path)": {
        E.REPORTED_TO_HEAD_FINAL: CaseState.CLOSED,
        **_AFTER_DEPARTURE_ENDINGS,
    },
    "multi_agency_coordination": {
        E.STATUS_REPORT: CaseState.REPORTING_TO_HEAD,
        **_AFTER_DEPARTURE_ENDINGS,
    },
    "reporting_to_head (step 6 path)": {
        E.STATUS_REPORT: CaseState.REPORTING_TO_HEAD,
        E.REPORTED_TO_HEAD_FINAL: CaseState.HANDLING_REPORT_TO_112,
        **_AFTER_DEPARTURE_ENDINGS,
    },
    "handling_report_to_112": {
        E.STATUS_REPORT: CaseState.HANDLING_REPORT_TO_112,
        E.HANDLING_REPORT: CaseState.CLOSED,
        **_AFTER_DEPARTURE_ENDINGS,
    },
    "closed": {},
    "cancelled": {},
    "duplicate": {},
}


def reach(name: str) -> CaseSnapshot:
    coordination, events = ROUTES[name]
    case = agency_case() if coordination else lone_case()
    snapshot = CaseSnapshot(case=case, workflow=workflow.start(case, 1))
    at = T0
    for event in events:
        at += 5 * S
        snapshot, _ = apply(snapshot, event, at)
    return snapshot


@pytest.mark.parametrize("name", list(ROUTES))
def test_the_routes_reach_their_state(name: str) -> None:
    expected = name.split(" ")[0]
    snapshot = reach(name)
    assert snapshot.workflow is not None
    assert snapshot.workflow.state.value == expected


@pytest.mark.parametrize(("name", "event"), [(n, e) for n in ROUTES for e in EventType])
def test_every_transition(name: str, event: EventType) -> None:
    snapshot = reach(name)
    assert snapshot.workflow is not None
    at = T0 + 10 * M
    legal = LEGAL[name]
    if event in legal:
        after, _ = apply(snapshot, event, at)
        assert after.workflow is not None
        assert after.workflow.state is legal[event]
    else:
        with pytest.raises(IllegalTransition) as refused:
            apply(snapshot, event, at)
        assert refused.value.state is snapshot.workflow.state
        assert set(refused.value.allowed) == set(legal)
        assert snapshot.workflow.state.value in str(refused.value)


@pytest.mark.parametrize(
    ("event", "wrong"),
    [
        (E.ACKNOWLEDGED, StaffRole.HEAD),
        (E.REPORTED_TO_HEAD, StaffRole.HEAD),
        (E.TEAM_ASSIGNED, StaffRole.SATGAS),
        (E.CLOSED, StaffRole.SATGAS),
        (E.CANCELLED, StaffRole.SATGAS),
        (E.DUPLICATE_OF, StaffRole.SATGAS),
    ],
)
def test_a_role_may_only_send_its_own_steps(event: EventType, wrong: StaffRole) -> None:
    snapshot = reach("awaiting_assignment")
    body = request(event, T0 + M).model_copy(update={"by": {"role": wrong}})
    with pytest.raises(StepNotYours):
        workflow.transition(snapshot, body, role=wrong, now=T0 + M, scale=1)


def test_by_role_must_be_the_tokens_role() -> None:
    snapshot = reach("received")
    body = CaseEventRequest.model_validate({"type": "acknowledged", "by": {"role": "head"}})
    with pytest.raises(InvalidEvent) as refused:
        workflow.transition(snapshot, body, role=StaffRole.SATGAS, now=T0 + S, scale=1)
    assert [e.pointer for e in refused.value.errors] == ["/by/role"]


@pytest.mark.parametrize(
    ("event", "pointer"),
    [
        (E.TEAM_ASSIGNED, "/team_id"),
        (E.NEEDS_OTHER_AGENCIES, "/agencies"),
        (E.FOLLOW_UP_DOCUMENTED, "/documentation"),
        (E.STATUS_REPORT, "/report"),
        (E.HANDLING_REPORT, "/report"),
        (E.DUPLICATE_OF, "/duplicate_of"),
    ],
)
def test_an_event_without_its_content_is_refused(event: EventType, pointer: str) -> None:
    snapshot = reach("received")
    body = CaseEventRequest.model_validate({"type": event.value, "by": {"role": role_for(event)}})
    with pytest.raises(InvalidEvent) as refused:
        workflow.transition(snapshot, body, role=role_for(event), now=T0 + S, scale=1)
    assert [e.pointer for e in refused.value.errors] == [pointer]


@pytest.mark.parametrize(("at", "detail"), [(T0 + H, "future"), (T0 + S, "before")])
def test_event_time_must_be_between_the_last_event_and_now(at: datetime, detail: str) -> None:
    snapshot, _ = apply(reach("received"), E.ACKNOWLEDGED, T0 + 5 * S)
    with pytest.raises(InvalidEvent) as refused:
        workflow.transition(
            snapshot, request(E.REPORTED_TO_HEAD, at), role=StaffRole.SATGAS, now=T0 + M, scale=1
        )
    assert refused.value.errors[0].pointer == "/at"
    assert detail in refused.value.errors[0].detail


def test_a_case_cannot_be_a_duplicate_of_itself() -> None:
    snapshot = reach("received")
    body = request(E.DUPLICATE_OF, T0 + S, duplicate_of=snapshot.case.case_id)
    with pytest.raises(InvalidEvent):
        workflow.transition(snapshot, body, role=StaffRole.HEAD, now=T0 + S, scale=1)


# ---- windows ----


def windows(snapshot: CaseSnapshot) -> dict[int, tuple[timedelta, timedelta]]:
    assert snapshot.workflow is not None
    return {r.step: (r.entered_at - T0, r.due_at - T0) for r in snapshot.workflow.steps}


def test_a_new_case_plans_the_step5_path_window_after_window() -> None:
    snapshot = CaseSnapshot(case=lone_case(), workflow=workflow.start(lone_case(), 1))
    assert windows(snapshot) == {
        1: (0 * S, 20 * S),
        2: (20 * S, 50 * S),
        3: (50 * S, 80 * S),
        4: (80 * S, 80 * S + 10 * M),
        5: (80 * S + 10 * M, 80 * S + 10 * M + 4 * H),
        7: (80 * S + 10 * M + 4 * H, 80 * S + 25 * M + 4 * H),
    }


def test_a_case_needing_other_agencies_starts_at_coordination() -> None:
    flow = workflow.start(agency_case(), 1)
    assert flow.state is CaseState.MULTI_AGENCY_COORDINATION
    snapshot = CaseSnapshot(case=agency_case(), workflow=flow)
    assert windows(snapshot) == {
        6: (0 * S, 5 * M),
        7: (5 * M, 20 * M),
        8: (20 * M, 30 * M),
    }


def test_the_scale_divides_every_window() -> None:
    flow = workflow.start(lone_case(), 10)
    assert [(r.step, r.due_at - r.entered_at) for r in flow.steps][:3] == [
        (1, 2 * S),
        (2, 3 * S),
        (3, 3 * S),
    ]


def test_a_step_done_early_replans_the_next_from_then() -> None:
    snapshot, moved = apply(reach("received"), E.ACKNOWLEDGED, T0 + 5 * S)
    got = windows(snapshot)
    assert got[1] == (0 * S, 20 * S)
    assert got[2] == (5 * S, 35 * S)
    assert got[3] == (35 * S, 65 * S)
    assert moved.cancel_steps == (1, 2, 3, 4, 5, 7)
    assert moved.timer_steps == (2, 3, 4, 5, 7)


def test_a_step_done_late_leaves_the_next_window_where_the_sop_put_it() -> None:
    snapshot, moved = apply(reach("received"), E.ACKNOWLEDGED, T0 + 25 * S)
    assert snapshot.workflow is not None
    step1 = snapshot.workflow.step(1)
    assert step1 is not None
    assert workflow.step_status(step1, T0 + M) is StepStatus.BREACHED
    assert windows(snapshot)[2] == (20 * S, 50 * S)
    assert moved.cancel_steps == (1,)
    assert moved.timer_steps == ()


def test_reported_to_head_from_received_closes_steps_one_and_two() -> None:
    snapshot, _ = apply(reach("received"), E.REPORTED_TO_HEAD, T0 + 10 * S)
    assert snapshot.workflow is not None
    done = {r.step: r.done_at for r in snapshot.workflow.steps if r.done_at}
    assert done == {1: T0 + 10 * S, 2: T0 + 10 * S}
    assert windows(snapshot)[3] == (10 * S, 40 * S)


def test_needs_other_agencies_skips_what_is_left_and_plans_coordination() -> None:
    at = T0 + 80 * S + 10 * M + H
    snapshot, moved = apply(reach("follow_up"), E.NEEDS_OTHER_AGENCIES, at)
    flow = snapshot.workflow
    assert flow is not None
    assert flow.coordination
    step5 = flow.step(5)
    assert step5 is not None
    assert step5.skipped_at == at
    assert windows(snapshot)[6] == (at - T0, at - T0 + 5 * M)
    assert windows(snapshot)[8] == (at - T0 + 20 * M, at - T0 + 30 * M)
    assert moved.routes_to_112
    assert moved.case is not None
    assert moved.case.needs_other_agencies
    assert [a.value for a in moved.case.requested_agencies] == ["police"]


def test_step8_is_left_out_when_another_agency_coordinates() -> None:
    snapshot, _ = apply(
        reach("follow_up"), E.NEEDS_OTHER_AGENCIES, T0 + 20 * M, uptd_ppa_coordinates=False
    )
    assert 8 not in windows(snapshot)
    snapshot, _ = apply(snapshot, E.STATUS_REPORT, T0 + 21 * M)
    snapshot, _ = apply(snapshot, E.REPORTED_TO_HEAD_FINAL, T0 + 22 * M)
    assert snapshot.workflow is not None
    assert snapshot.workflow.state is CaseState.CLOSED


def test_ending_a_case_skips_open_steps_and_forgets_planned_ones() -> None:
    snapshot, _ = apply(reach("received"), E.CANCELLED, T0 + 30 * S)
    assert snapshot.workflow is not None
    assert [(r.step, r.skipped_at) for r in snapshot.workflow.steps] == [
        (1, T0 + 30 * S),
        (2, T0 + 30 * S),
    ]
    assert snapshot.workflow.ended_at == T0 + 30 * S


# ---- timers and messages ----

SENDING = Sending(sender_id="gw", status=DistributionStatus.EXERCISE, new_id=counter("m"))


def test_sla_timers_warn_at_80_percent_and_breach_at_100() -> None:
    case = lone_case()
    flow = workflow.start(case, 1)
    later = T0 + 30 * S  # both windows have opened
    timers = workflow.sla_timers(
        case, flow, (1, 2), now=later, kecamatan_slug="pinang", new_id=counter()
    )
    assert [(t.kind, t.fire_at - T0, t.subject) for t in timers] == [
        ("sla.warning", 16 * S, f"{case.case_id}#sop1"),
        ("sla.breached", 20 * S, f"{case.case_id}#sop1"),
        ("sla.warning", 44 * S, f"{case.case_id}#sop2"),
        ("sla.breached", 50 * S, f"{case.case_id}#sop2"),
    ]
    fired = {(1, "sla.warning"): T0 + 16 * S}
    again = workflow.sla_timers(
        case, flow, (1,), now=later, kecamatan_slug="pinang", new_id=counter(), fired=fired
    )
    assert [t.kind for t in again] == ["sla.breached"]


def chains(timers: tuple[Timer, ...]) -> list[tuple[str, int, str | None]]:
    return [(t.kind, int(t.data["step"]), t.data.get("then")) for t in timers]


def test_a_new_case_arms_only_the_window_that_opened() -> None:
    case = lone_case()
    timers = workflow.sla_timers(
        case,
        workflow.start(case, 2),
        workflow.STANDARDS,
        now=T0,
        kecamatan_slug="pinang",
        new_id=counter(),
    )
    assert chains(timers) == [
        ("sla.warning", 1, None),
        ("sla.breached", 1, "2,3,4,5,7"),
    ]
    assert timers[1].data["scale"] == "2"


def test_a_breach_arms_the_next_window_and_hands_on_the_rest() -> None:
    case = lone_case()
    flow = workflow.start(case, 1)
    kw: dict[str, Any] = {"kecamatan_slug": "pinang", "new_id": counter()}
    breach = workflow.sla_timers(case, flow, (1,), now=T0, **kw)[1]
    step2 = workflow.next_window_timers(breach, counter("n"))
    assert chains(step2) == [("sla.warning", 2, None), ("sla.breached", 2, "3,4,5,7")]
    assert [t.fire_at - T0 for t in step2] == [44 * S, 50 * S]
    assert step2[0].data == {
        "step": "2",
        "entered_at": (T0 + 20 * S).isoformat(),
        "due_at": (T0 + 50 * S).isoformat(),
        "kecamatan": "pinang",
        "risk": "high",
    }
    planned = flow.step(7)
    assert planned is not None
    last = workflow.sla_timers(case, flow, (7,), now=planned.entered_at, **kw)[1]
    assert last.data.get("then") is None
    assert workflow.next_window_timers(last, counter("n")) == ()


def test_a_step_done_early_arms_the_next_window_from_then() -> None:
    decision = decide(
        reach("received"),
        request(E.ACKNOWLEDGED, T0 + 5 * S),
        role=StaffRole.SATGAS,
        now=T0 + 5 * S,
        scale=1,
        kecamatan_slug="pinang",
        sending=SENDING,
    )
    sla = tuple(t for t in decision.timers if t.kind in workflow.SLA_KINDS)
    assert chains(sla) == [("sla.warning", 2, None), ("sla.breached", 2, "3,4,5,7")]
    assert [t.fire_at - T0 for t in sla] == [29 * S, 35 * S]


def test_an_event_told_late_arms_every_window_opened_since() -> None:
    decision = decide(
        reach("received"),
        request(E.ACKNOWLEDGED, T0 + 5 * S),
        role=StaffRole.SATGAS,
        now=T0 + 70 * S,  # SOP 2 [5 s, 35 s) and SOP 3 [35 s, 65 s) have closed since
        scale=1,
        kecamatan_slug="pinang",
        sending=SENDING,
    )
    sla = tuple(t for t in decision.timers if t.kind in workflow.SLA_KINDS)
    assert chains(sla) == [
        ("sla.warning", 2, None),
        ("sla.breached", 2, None),
        ("sla.warning", 3, None),
        ("sla.breached", 3, None),
        ("sla.warning", 4, None),
        ("sla.breached", 4, "5,7"),
    ]


def test_sla_event_is_an_s0_s1_envelope_on_its_routing_key() -> None:
    case = lone_case()
    flow = workflow.start(case, 1)
    timer = workflow.sla_timers(
        case, flow, (2,), now=T0 + M, kecamatan_slug="pinang", new_id=counter()
    )[1]
    (message,) = sla_event_messages(timer, now=T0 + M, sending=SENDING)
    assert message.destination is Destination.EVENTS
    assert message.routing_key == "sla.breached.pinang.high"
    body = json.loads(message.body)
    assert body["schema"] == "sla-event/1"
    assert body["kind"] == "update"
    assert body["sequence"] == 5
    assert body["content"] == {
        "case_id": case.case_id,
        "event": "breached",
        "step": 2,
        "activity": "report to the head",
        "entered_at": "2026-11-30T06:45:30Z",
        "due_at": "2026-11-30T06:46:00Z",
        "kecamatan": "pinang",
        "risk_level": "high",
    }


def test_a_status_report_goes_to_112_after_what_it_got_before() -> None:
    snapshot = reach("multi_agency_coordination")
    snapshot = CaseSnapshot(
        case=snapshot.case, workflow=snapshot.workflow, c112=C112Stream(1, ("case-push-1",))
    )
    event = request(
        E.STATUS_REPORT,
        T0 + 2 * M,
        report={
            "victim_status": "safe",
            "services": ["penjangkauan"],
            "agencies": [{"agency": "police", "role": "supporting", "status": "en_route"}],
            "actions": [
                {
                    "at": "2026-11-30T06:46:00Z",
                    "actor_role": "satgas-ppa",
                    "action": "team_on_scene",
                }
            ],
        },
    )
    decision = decide(
        snapshot,
        event,
        role=StaffRole.SATGAS,
        now=T0 + 3 * M,
        scale=1,
        kecamatan_slug="pinang",
        sending=SENDING,
    )
    message, event_message = decision.outgoing
    assert (message.destination, message.routing_key, message.sequence) == (
        Destination.DELIVER,
        "c112",
        2,
    )
    assert (event_message.destination, event_message.routing_key) == (
        Destination.EVENTS,
        "status.status.pinang.high",
    )
    published = json.loads(event_message.body)
    assert published["redaction_profile"] == "dashboard"
    assert published["content"] == json.loads(message.body)["content"]
    body = json.loads(message.body)
    assert body["schema"] == "status-report/1"
    assert body["references"] == ["case-push-1"]
    assert body["deadline_at"] == "2026-11-30T06:53:10Z"
    assert body["content"]["report_number"] == 1
    assert body["content"]["version"] == "initial"
    assert body["content"]["type"] == "status"
    assert body["content"]["case_state"] == "reporting_to_head"
    assert body["content"]["prepared_by"] == {"role": "satgas-ppa"}
    assert body["content"]["agencies"] == [
        {"agency": "police", "role": "supporting", "status": "en_route"}
    ]
    assert decision.cancel_subjects == tuple(f"{snapshot.case.case_id}#sop{s}" for s in (6, 7, 8))
    assert escalations(decision) == {
        (message.message_id, escalation.AT_RISK, T0 + 3 * M + 4 * M),
        (message.message_id, escalation.DEADLINE_MISSED, T0 + 8 * M),
    }, "the status report to 112 is watched; its copy on the topic is not"


def test_needs_other_agencies_hands_the_case_to_112_due_in_5_minutes() -> None:
    snapshot = reach("team_mobilising")
    decision = decide(
        snapshot,
        request(E.NEEDS_OTHER_AGENCIES, T0 + M),
        role=StaffRole.SATGAS,
        now=T0 + M,
        scale=1,
        kecamatan_slug="pinang",
        sending=SENDING,
    )
    (message,) = decision.outgoing
    assert (message.routing_key, message.sequence) == ("c112", 1)
    assert message.deadline_at == T0 + 6 * M
    body = json.loads(message.body)
    assert body["schema"] == "kdrt-case/1"
    assert body["content"]["requested_agencies"] == ["police"]
    assert "narrative" not in body["content"]
    assert decision.case is not None
    sla = tuple(t for t in decision.timers if t.kind in workflow.SLA_KINDS)
    assert chains(sla) == [("sla.warning", 6, None), ("sla.breached", 6, "7,8")]
    assert escalations(decision) == {
        (message.message_id, escalation.AT_RISK, T0 + M + 4 * M),
        (message.message_id, escalation.DEADLINE_MISSED, T0 + 6 * M),
    }


def escalations(decision: CaseDecision) -> set[tuple[str, str, datetime]]:
    return {(t.subject, t.kind, t.fire_at) for t in decision.timers if t.kind in escalation.KINDS}


def test_the_112_deadline_is_compressed_with_the_sla_scale() -> None:
    decision = decide(
        reach("team_mobilising"),
        request(E.NEEDS_OTHER_AGENCIES, T0 + M),
        role=StaffRole.SATGAS,
        now=T0 + M,
        scale=60,
        kecamatan_slug="pinang",
        sending=SENDING,
    )
    (message,) = decision.outgoing
    assert message.deadline_at == T0 + M + 5 * S
    assert escalations(decision) == {
        (message.message_id, escalation.AT_RISK, T0 + M + 4 * S),
        (message.message_id, escalation.DEADLINE_MISSED, T0 + M + 5 * S),
    }


def test_the_final_handling_report_closes_the_case_and_still_watches_its_deadline() -> None:
    snapshot = reach("handling_report_to_112")
    snapshot = CaseSnapshot(
        case=snapshot.case, workflow=snapshot.workflow, c112=C112Stream(2, ("push-1", "report-1"))
    )
    decision = decide(
        snapshot,
        request(E.HANDLING_REPORT, T0 + H),
        role=role_for(E.HANDLING_REPORT),
        now=T0 + H,
        scale=1,
        kecamatan_slug="pinang",
        sending=SENDING,
    )
    assert decision.workflow.state is CaseState.CLOSED
    to_112 = [m for m in decision.outgoing if m.destination is Destination.DELIVER]
    (report,) = to_112
    assert escalations(decision) == {
        (report.message_id, escalation.AT_RISK, T0 + H + 4 * M),
        (report.message_id, escalation.DEADLINE_MISSED, T0 + H + 5 * M),
    }
    assert not [t for t in decision.timers if t.kind in workflow.SLA_KINDS]


def test_ending_a_case_cancels_every_step_timer_and_schedules_none() -> None:
    snapshot = reach("team_mobilising")
    decision = decide(
        snapshot,
        request(E.CANCELLED, T0 + M),
        role=StaffRole.HEAD,
        now=T0 + M,
        scale=1,
        kecamatan_slug="pinang",
        sending=SENDING,
    )
    assert decision.timers == ()
    assert len(decision.cancel_subjects) == 8
    assert decision.workflow.state is CaseState.CANCELLED


def test_an_event_time_a_little_ahead_of_the_clock_is_taken_as_now() -> None:
    snapshot = reach("received")
    moved = workflow.transition(
        snapshot,
        request(E.ACKNOWLEDGED, T0 + 13 * S),
        role=StaffRole.SATGAS,
        now=T0 + 10 * S,
        scale=1,
    )
    assert moved.entry.at == T0 + 10 * S
    step1 = moved.workflow.step(1)
    assert step1 is not None
    assert step1.done_at == T0 + 10 * S


# ---- arming window by window fires what arming every planned step fired ----

FAR = datetime.max.replace(tzinfo=UTC)


class TimerBook:
    """The store's timer rules in memory: cancel by subject, fire in order, a fired
    timer's follow-on timers armed as it fires."""

    def __init__(self) -> None:
        self.pending: list[Timer] = []
        self.fired: list[tuple[int, str, datetime]] = []
        self.marks: dict[tuple[int, str], datetime] = {}

    def cancel(self, subjects: tuple[str, ...]) -> None:
        self.pending = [t for t in self.pending if t.subject not in subjects]

    def fire_until(self, now: datetime) -> None:
        while due := [t for t in self.pending if t.fire_at <= now]:
            timer = min(due, key=lambda t: t.fire_at)
            self.pending.remove(timer)
            step = int(timer.data["step"])
            self.fired.append((step, timer.kind, timer.fire_at))
            self.marks[(step, timer.kind)] = now
            if timer.kind == workflow.SLA_BREACHED:
                self.pending += workflow.next_window_timers(timer, counter("n"))


def run_case(
    coordination: bool, events: list[tuple[EventType, timedelta, timedelta]], *, eager: bool
) -> list[tuple[int, str, datetime]]:
    """Fire a case's SLA timers through ``events`` (type, after the last, told how late)."""
    case = agency_case() if coordination else lone_case()
    snapshot = CaseSnapshot(case=case, workflow=workflow.start(case, 1))
    assert snapshot.workflow is not None
    book = TimerBook()
    kw: dict[str, Any] = {"kecamatan_slug": "pinang", "new_id": counter()}
    book.pending += workflow.sla_timers(
        case, snapshot.workflow, workflow.STANDARDS, now=FAR if eager else T0, **kw
    )
    now = last = T0
    for event, gap, late in events:
        now += gap
        book.fire_until(now)
        at = max(last, now - late)
        snapshot, moved = apply(snapshot, event, at, now=now)
        last = at
        ended = moved.workflow.state in workflow.TERMINAL
        book.cancel(
            tuple(
                workflow.timer_subject(case.case_id, s)
                for s in (workflow.STANDARDS if ended else moved.cancel_steps)
            )
        )
        if not ended:
            book.pending += workflow.sla_timers(
                case,
                moved.workflow,
                moved.timer_steps,
                now=FAR if eager else now,
                fired=book.marks,
                **kw,
            )
    book.fire_until(now + 2 * workflow.SOP_TOTAL)
    return book.fired


# in windows of the current step: the gap (and up to one window more), how late it is told
GAPS = (0, 1, 2, 4)
LATENESS = (0, 0, 0.5, 1, 3)
ENDINGS = frozenset({E.CLOSED, E.CANCELLED, E.DUPLICATE_OF})


@st.composite
def case_stories(draw: st.DrawFn) -> tuple[bool, list[tuple[EventType, timedelta, timedelta]]]:
    """A case and the events staff send, each some while after the last, some told late:
    first the way to one of ``ROUTES``, then what is allowed, an ending one time in four
    at most (an ending leaves nothing to fire)."""
    coordination, route = ROUTES[draw(st.sampled_from(sorted(ROUTES)))]
    case = agency_case() if coordination else lone_case()
    snapshot = CaseSnapshot(case=case, workflow=workflow.start(case, 1))
    events = []
    now = last = T0
    for n in range(len(route) + draw(st.integers(0, 5))):
        assert snapshot.workflow is not None
        allowed = workflow.allowed_events(snapshot.workflow)
        if not allowed:
            break
        going_on = [e for e in allowed if e not in ENDINGS] or allowed
        pool = going_on if draw(st.integers(0, 3)) else allowed
        event = route[n] if n < len(route) else draw(st.sampled_from(pool))
        step = workflow.STEP_OF_STATE.get(snapshot.workflow.state, 1)
        window = workflow.window(step, 1)
        gap = draw(st.sampled_from(GAPS)) * window + draw(st.integers(0, int(window / S))) * S
        late = min(gap, draw(st.sampled_from(LATENESS)) * window)
        events.append((event, gap, late))
        now += gap
        at = max(last, now - late)
        snapshot, _ = apply(snapshot, event, at, now=now)
        last = at
    return coordination, events


@settings(max_examples=600, deadline=None)
@given(case_stories())
def test_arming_window_by_window_fires_what_arming_the_whole_plan_fired(
    story: tuple[bool, list[tuple[EventType, timedelta, timedelta]]],
) -> None:
    coordination, events = story
    lazy = run_case(coordination, events, eager=False)
    assert sorted(lazy) == sorted(run_case(coordination, events, eager=True))
    assert len({(step, kind) for step, kind, _ in lazy}) == len(lazy), "fired twice"


def way_to_follow_up(gap: timedelta) -> list[tuple[EventType, timedelta, timedelta]]:
    """A lone case's events up to SOP 5, ``gap`` apart, each told at once."""
    _, route = ROUTES["follow_up"]
    return [(event, gap, 0 * S) for event in route]


def test_a_step_that_fired_before_coordination_does_not_fire_again_after_it() -> None:
    events = [
        *way_to_follow_up(5 * S),
        (E.NEEDS_OTHER_AGENCIES, 5 * H, 0 * S),  # SOP 5 and SOP 7 fell behind meanwhile
    ]
    fired = run_case(False, events, eager=False)
    assert sorted((step, kind) for step, kind, _ in fired) == [
        (step, kind) for step in (5, 6, 7, 8) for kind in ("sla.breached", "sla.warning")
    ]
    step8 = {kind: at - T0 for step, kind, at in fired if step == 8}
    assert step8 == {
        "sla.warning": 5 * H + 15 * S + 28 * M,
        "sla.breached": 5 * H + 15 * S + 30 * M,
    }


def test_a_step_whose_breach_fired_hands_the_chain_to_the_next_step() -> None:
    events = [
        *way_to_follow_up(0 * S),
        (E.NEEDS_OTHER_AGENCIES, 8 * H, 0 * S),  # SOP 5 and SOP 7 fell behind meanwhile
        (E.STATUS_REPORT, 0 * S, 0 * S),  # SOP 6 done at once: SOP 7 again, whose breach fired
    ]
    fired = run_case(False, events, eager=False)
    step8 = {kind: at - T0 for step, kind, at in fired if step == 8}
    assert step8 == {"sla.warning": 8 * H + 23 * M, "sla.breached": 8 * H + 25 * M}
