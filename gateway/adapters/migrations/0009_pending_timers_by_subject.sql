-- Cancelling a message's or a step's timers looks up its pending ones by subject.
-- Beside timers_due (the same predicate, ordered by fire_at), an index on subject with
-- that predicate is the one a planner takes even before the table has statistics:
-- without it PostgreSQL walked every pending timer of the city for each delivery.

CREATE INDEX timers_pending_subject ON timers (subject)
    WHERE fired_at IS NULL AND cancelled_at IS NULL;
