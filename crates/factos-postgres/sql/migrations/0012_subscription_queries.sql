-- factos schema, version 12: a subscriber's query is kept with its checkpoint.

-- The query (its unambiguous encoding) the checkpoint was moved under.
-- A subscriber started with another query is refused until it is reset:
-- a changed query would otherwise skip the history of its new events.
-- NULL: not recorded yet (a subscriber from before this version, or one
-- just reset); its next run records its query.
ALTER TABLE factos_subscriptions ADD COLUMN IF NOT EXISTS query text;
