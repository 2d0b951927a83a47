-- Takes the event table in ROW EXCLUSIVE mode through its owner's function,
-- before the advisory keys of a scoped guard (see DESIGN.md, locks in order).
SELECT {schema}.factos_lock_events_for_writing()
