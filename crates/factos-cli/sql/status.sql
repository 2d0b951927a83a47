-- Counts and sizes for `factos status`. {schema} is the quoted schema name.
SELECT
    (SELECT count(*) FROM {schema}.factos_events) AS events,
    (SELECT max(position) FROM {schema}.factos_events) AS head,
    (SELECT count(DISTINCT stream) FROM {schema}.factos_events) AS streams,
    (SELECT count(DISTINCT tag) FROM {schema}.factos_event_tags) AS tags,
    pg_total_relation_size('{schema}.factos_events') AS events_bytes,
    pg_total_relation_size('{schema}.factos_event_tags') AS tags_bytes
