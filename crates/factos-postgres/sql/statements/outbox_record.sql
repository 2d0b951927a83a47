-- Records effects in the dispatch's transaction: $1 the causing events'
-- positions, $2 topics, $3 payloads (parallel arrays).
INSERT INTO {schema}.factos_outbox (event_position, topic, payload)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[])
