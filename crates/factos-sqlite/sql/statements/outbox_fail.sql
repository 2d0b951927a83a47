-- Records a failed attempt of message ?1 leased under token ?2: error ?3;
-- due again at ?4, or parked (at ?5, now) when it has been attempted ?6
-- times. Returns whether it was parked; no row when the lease was lost.
UPDATE factos_outbox
SET lease_token = NULL,
    last_error = ?3,
    available_at = ?4,
    parked_at = CASE WHEN attempts >= ?6 THEN ?5 END
WHERE id = ?1 AND lease_token = ?2
RETURNING parked_at IS NOT NULL
