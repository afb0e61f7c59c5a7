-- A webhook subscription whose partner answered 410 Gone is stored as 'gone', so every
-- gateway process stops delivering it, and keeps it stopped across restarts, until an
-- admin resumes it. A CHECK constraint cannot be altered in SQLite: the table is made
-- again with the new one.

CREATE TABLE subscriptions_0011 (
    subscription_id TEXT PRIMARY KEY,
    agency_id       TEXT NOT NULL,
    role            TEXT NOT NULL,
    patterns        TEXT NOT NULL,
    mode            TEXT NOT NULL CHECK (mode IN ('webhook', 'amqp')),
    url             TEXT,
    secret          TEXT,
    status          TEXT NOT NULL CHECK (status IN ('active', 'paused', 'gone')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

INSERT INTO subscriptions_0011 (subscription_id, agency_id, role, patterns, mode, url,
    secret, status, created_at, updated_at)
SELECT subscription_id, agency_id, role, patterns, mode, url, secret, status, created_at,
    updated_at
FROM subscriptions;

DROP TABLE subscriptions;

ALTER TABLE subscriptions_0011 RENAME TO subscriptions;

CREATE UNIQUE INDEX subscriptions_one_amqp_per_agency ON subscriptions (agency_id)
    WHERE mode = 'amqp';
