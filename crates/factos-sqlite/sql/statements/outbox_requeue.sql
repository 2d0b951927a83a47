-- Makes parked message ?1 of topic ?2 due again (at ?3, now), its attempts reset.
UPDATE factos_outbox
SET parked_at = NULL, attempts = 0, lease_token = NULL, available_at = ?3
WHERE id = ?1 AND topic = ?2 AND parked_at IS NOT NULL
