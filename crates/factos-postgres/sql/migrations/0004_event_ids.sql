-- factos schema, version 4: event ids are unique, so a retried dispatch
-- (same idempotency key, same ids) finds what an earlier attempt committed
-- instead of appending twice.
CREATE UNIQUE INDEX IF NOT EXISTS factos_events_id ON factos_events (id);
