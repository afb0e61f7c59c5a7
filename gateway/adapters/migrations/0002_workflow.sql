-- SOP 357 workflow: timers that fire once, each case's place in the SOP, its event history.

CREATE TABLE timers (
    timer_id     TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    case_id      TEXT NOT NULL,
    subject      TEXT NOT NULL,
    fire_at      TEXT NOT NULL,
    data         TEXT NOT NULL,
    fired_at     TEXT,
    cancelled_at TEXT
);

CREATE INDEX timers_due ON timers (fire_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;

CREATE INDEX timers_subject ON timers (subject);

CREATE INDEX timers_case ON timers (case_id);

CREATE TABLE case_workflow (
    case_id    TEXT PRIMARY KEY REFERENCES cases (case_id),
    state      TEXT NOT NULL,
    ended_at   TEXT,
    data       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX case_workflow_ended ON case_workflow (ended_at);

CREATE TABLE case_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id     TEXT NOT NULL REFERENCES cases (case_id),
    type        TEXT NOT NULL,
    at          TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    by_role     TEXT NOT NULL,
    by_id       TEXT,
    details     TEXT NOT NULL
);

CREATE INDEX case_events_case ON case_events (case_id, id);

CREATE INDEX cases_received ON cases (received_at);
