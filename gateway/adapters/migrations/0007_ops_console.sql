-- The ops console (issue 6): recent attempts per recipient, and timers by kind and time.

CREATE INDEX delivery_log_recipient_at ON delivery_log (recipient, at);

CREATE INDEX delivery_log_at ON delivery_log (at);

CREATE INDEX timers_kind_fire ON timers (kind, fire_at);
