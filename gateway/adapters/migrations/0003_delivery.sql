-- Delivery: which messages are settled per recipient (for per-case order), the parking
-- lot of record, and the functional receipts 112 posts back.

CREATE INDEX outbox_case_sequence ON outbox (case_id, routing_key, sequence);

CREATE TABLE delivery_settled (
    distribution_id TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    case_id         TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    at              TEXT NOT NULL,
    PRIMARY KEY (distribution_id, recipient)
);

CREATE TABLE parked (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    distribution_id TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    case_id         TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    deadline_at     TEXT,
    attempt         INTEGER NOT NULL,
    tries           INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    error_class     TEXT,
    parked_at       TEXT NOT NULL,
    body            BLOB NOT NULL,
    replayed_at     TEXT
);

CREATE UNIQUE INDEX parked_waiting ON parked (distribution_id, recipient)
    WHERE replayed_at IS NULL;

CREATE INDEX parked_case ON parked (case_id);

CREATE TABLE receipts (
    webhook_id      TEXT PRIMARY KEY,
    distribution_id TEXT NOT NULL,
    case_id         TEXT,
    status          TEXT NOT NULL,
    at              TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    by_role         TEXT,
    by_id           TEXT,
    ticket          TEXT,
    reason          TEXT
);

CREATE INDEX receipts_distribution ON receipts (distribution_id);

CREATE INDEX receipts_case ON receipts (case_id);
