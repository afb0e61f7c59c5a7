-- Security: signed inbound messages already taken, so a replayed one is refused.
-- A row is needed only while its signature is inside the timestamp tolerance.

CREATE TABLE seen_webhook_ids (
    webhook_id TEXT NOT NULL,
    signed_at  INTEGER NOT NULL,
    seen_at    TEXT NOT NULL,
    keep_until TEXT NOT NULL,
    PRIMARY KEY (webhook_id, signed_at)
);

CREATE INDEX seen_webhook_ids_keep_until ON seen_webhook_ids (keep_until);
