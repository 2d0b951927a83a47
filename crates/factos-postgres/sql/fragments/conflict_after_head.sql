-- A condition on all events: some event after $9. Not
-- EXISTS (... WHERE position > $9): under a generic plan that expects a third
-- of the log to match and picks a sequential scan, which reads the whole log
-- when nothing matches (found profiling bulk appends). The head is one probe
-- at the end of the primary key.
coalesce((SELECT max(position) FROM {schema}.factos_events), 0) > $9
