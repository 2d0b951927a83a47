-- Records a failed attempt of message $1 leased under token $2: error $3;
-- due again after $4 milliseconds, or parked when it has been attempted $5
-- times. Returns whether it was parked; no row when the lease was lost.
UPDATE {schema}.factos_outbox
SET lease_token = NULL,
    last_error = $3,
    available_at = now() + make_interval(secs => $4::bigint / 1000.0),
    parked_at = CASE WHEN attempts >= $5 THEN now() END
WHERE id = $1 AND lease_token = $2
RETURNING parked_at IS NOT NULL
