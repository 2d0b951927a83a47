-- Outbox messages per topic: waiting (due now or after a backoff), leased
-- (a worker holds them), parked (failed too often).
SELECT topic,
       count(*) FILTER (WHERE parked_at IS NULL AND lease_token IS NULL) AS waiting,
       count(*) FILTER (WHERE parked_at IS NULL AND lease_token IS NOT NULL AND available_at > now()) AS leased,
       count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked
FROM {schema}.factos_outbox
GROUP BY topic
ORDER BY topic
