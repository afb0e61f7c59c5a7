-- Which delivery messages are not settled yet, read by the ops console's recipients
-- panel. Without it that question was an anti-join over every delivery message ever
-- made (170 ms with 100 000 of them, on the event loop): settled_at follows
-- delivery_settled for the outbox's deliver rows, and the partial index holds only the
-- messages still waiting.

ALTER TABLE outbox ADD COLUMN settled_at TEXT;

UPDATE outbox SET settled_at = (
    SELECT s.at FROM delivery_settled s
    WHERE s.distribution_id = outbox.message_id AND s.recipient = outbox.routing_key
) WHERE destination = 'deliver';

CREATE INDEX outbox_waiting ON outbox (routing_key, created_at)
    WHERE destination = 'deliver' AND settled_at IS NULL;
