-- Parks the messages of topic ?1 whose lease ran out (before ?2, now) on
-- their last allowed attempt (?3): a worker that keeps dying does not get
-- the message forever. Returns their ids.
UPDATE factos_outbox
SET lease_token = NULL,
    parked_at = ?2,
    last_error = 'the lease ran out before the outcome of attempt ' || attempts || ' was recorded'
WHERE topic = ?1 AND parked_at IS NULL AND lease_token IS NOT NULL
  AND available_at <= ?2 AND attempts >= ?3
RETURNING id
