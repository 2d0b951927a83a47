-- The highest position, 0 when there are no events.
SELECT coalesce(max(position), 0) FROM {schema}.factos_events
