-- Leases up to ?3 due messages of topic ?1 (due at ?2, now) under token ?4
-- until ?5. A message whose earlier lease ran out keeps why as its error.
-- Runs in the writer's transaction: no other worker leases meanwhile.
UPDATE factos_outbox
SET lease_token = ?4,
    available_at = ?5,
    attempts = attempts + 1,
    last_error = CASE WHEN lease_token IS NOT NULL
                      THEN 'the lease ran out before the outcome of attempt ' || attempts || ' was recorded'
                      ELSE last_error END
WHERE id IN (
    SELECT id FROM factos_outbox
    WHERE topic = ?1 AND parked_at IS NULL AND available_at <= ?2
    ORDER BY available_at, id
    LIMIT ?3
)
RETURNING id, event_position, payload, attempts, last_error
