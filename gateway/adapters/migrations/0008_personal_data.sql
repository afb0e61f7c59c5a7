-- Personal data at rest, retention and the audit log (issue 7).
--
-- cases.data keeps the S0/S1 part of the case in plain text (reports, ops); the whole
-- case is in cases.sealed (AES-GCM, see gateway/adapters/sealing.py) until the retention
-- purge drops it and sets purged_at. reports.raw, quarantine.raw, outbox.body and
-- parked.body hold sealed bytes; a purge empties them. A case event's S2/S3 details and
-- the message copy an escalation timer carries are sealed beside their rows.

ALTER TABLE cases ADD COLUMN sealed BLOB;

ALTER TABLE cases ADD COLUMN purged_at TEXT;

ALTER TABLE case_events ADD COLUMN sealed_details BLOB;

ALTER TABLE timers ADD COLUMN sealed_body BLOB;

-- The audit log: rows chained by hash (gateway/audit.py), seq given by the writer.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    actor_id   TEXT,
    action     TEXT NOT NULL,
    case_id    TEXT,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE INDEX audit_log_case ON audit_log (case_id);

-- The last row's seq and hash, updated with every append: a removed last row shows.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq  INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);

INSERT INTO audit_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
