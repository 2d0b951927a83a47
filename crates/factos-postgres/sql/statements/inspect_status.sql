-- What `PostgresStore::status` reports, in one row: the schema version, the
-- number of events, the highest position (NULL: no events), the number of
-- streams and of distinct tags, and the total sizes (with indexes and TOAST)
-- of the event table and the tag mirror. Fails with undefined_table when the
-- schema is not migrated.
SELECT
    (SELECT max(version) FROM {schema}.factos_schema_migrations) AS version,
    (SELECT count(*) FROM {schema}.factos_events) AS events,
    (SELECT max(position) FROM {schema}.factos_events) AS head,
    (SELECT count(DISTINCT stream) FROM {schema}.factos_events) AS streams,
    (SELECT count(DISTINCT tag) FROM {schema}.factos_event_tags) AS tags,
    pg_total_relation_size('{schema}.factos_events') AS events_bytes,
    pg_total_relation_size('{schema}.factos_event_tags') AS tags_bytes
