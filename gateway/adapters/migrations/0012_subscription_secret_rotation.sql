-- A webhook subscription's secret can be replaced: pushes are signed with the previous
-- secret too until previous_until, so the partner can switch without a refused push.

ALTER TABLE subscriptions ADD COLUMN previous_secret TEXT;

ALTER TABLE subscriptions ADD COLUMN previous_until TEXT;
