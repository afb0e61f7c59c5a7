-- Partner subscriptions (issue 5). patterns is a JSON list of AMQP topic patterns.
-- The webhook secret is kept here: the delivery worker signs with it.

CREATE TABLE subscriptions (
    subscription_id TEXT PRIMARY KEY,
    agency_id       TEXT NOT NULL,
    role            TEXT NOT NULL,
    patterns        TEXT NOT NULL,
    mode            TEXT NOT NULL CHECK (mode IN ('webhook', 'amqp')),
    url             TEXT,
    secret          TEXT,
    status          TEXT NOT NULL CHECK (status IN ('active', 'paused')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- An agency's AMQP queue is one per agency, so is its AMQP subscription.
CREATE UNIQUE INDEX subscriptions_one_amqp_per_agency ON subscriptions (agency_id)
    WHERE mode = 'amqp';
