-- Records one effect in the dispatch's transaction: ?1 the causing event's
-- position, ?2 its topic, ?3 its payload, ?4 now.
INSERT INTO factos_outbox (event_position, topic, payload, available_at, created_at)
VALUES (?1, ?2, ?3, ?4, ?4)
