-- The initial schema. Times are ISO 8601 UTC text; booleans are 0/1 integers.

CREATE TABLE cases (
    case_id              TEXT PRIMARY KEY,
    source_system        TEXT NOT NULL,
    source_reference     TEXT NOT NULL,
    received_at          TEXT NOT NULL,
    state                TEXT NOT NULL DEFAULT 'received',
    kecamatan_code       TEXT NOT NULL,
    risk_level           TEXT NOT NULL,
    needs_other_agencies INTEGER NOT NULL,
    c112_deadline_at     TEXT,
    data                 TEXT NOT NULL
);

CREATE TABLE reports (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    source_system    TEXT NOT NULL,
    source_reference TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    raw              BLOB NOT NULL,
    case_id          TEXT NOT NULL REFERENCES cases (case_id),
    UNIQUE (source_system, source_reference)
);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   TEXT NOT NULL,
    destination  TEXT NOT NULL,
    routing_key  TEXT NOT NULL,
    message_id   TEXT NOT NULL UNIQUE,
    case_id      TEXT NOT NULL REFERENCES cases (case_id),
    sequence     INTEGER NOT NULL,
    deadline_at  TEXT,
    body         BLOB NOT NULL,
    published_at TEXT
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE quarantine (
    id           TEXT PRIMARY KEY,
    received_at  TEXT NOT NULL,
    source       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    content_type TEXT,
    errors       TEXT NOT NULL,
    raw          BLOB NOT NULL
);

CREATE TABLE delivery_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    distribution_id TEXT NOT NULL,
    case_id         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    at              TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    latency_ms      REAL,
    status_code     INTEGER,
    error_class     TEXT,
    next_try_at     TEXT,
    reason          TEXT
);

CREATE INDEX delivery_log_distribution ON delivery_log (distribution_id);

CREATE INDEX delivery_log_case ON delivery_log (case_id);
