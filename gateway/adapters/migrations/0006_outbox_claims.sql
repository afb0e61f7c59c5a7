-- Which relay (gateway process) is publishing an outbox row, and until when: two
-- processes never publish the same row, and a crashed one's rows are taken over once
-- its lease has passed.

ALTER TABLE outbox ADD COLUMN claimed_by TEXT;

ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
